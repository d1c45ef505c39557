"""Tests of the YOLOv5-style loss, IoU variants and target assignment."""

from __future__ import annotations

import math

import pytest
import torch

from insightray.errors import ConfigError
from insightray.training.detection.loss import (
    LossConfig,
    YoloLoss,
    assign_level,
    bbox_iou,
    bce_with_logits,
    scaled_gains,
    smooth_bce_targets,
)

DEFAULT_ANCHORS = torch.tensor(
    [
        [[10, 13], [16, 30], [33, 23]],
        [[30, 61], [62, 45], [59, 119]],
        [[116, 90], [156, 198], [373, 326]],
    ],
    dtype=torch.float32,
)
STRIDES = torch.tensor([8.0, 16.0, 32.0])
IMG = 160  # grids 20, 10, 5


def raw_outputs(batch: int = 2, num_classes: int = 3, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, 3, IMG // s, IMG // s, 5 + num_classes, generator=gen)
        for s in (8, 16, 32)
    ]


def one_target() -> torch.Tensor:
    """A 8x8 px box centred at grid (5.3, 7.8) of the stride-8 level, class 1."""
    return torch.tensor([[0.0, 1.0, 5.3 / 20, 7.8 / 20, 8 / IMG, 8 / IMG]])


# --- IoU variants -------------------------------------------------------------------------


def test_ciou_of_identical_boxes_is_one() -> None:
    box = torch.tensor([[3.0, 4.0, 2.0, 5.0]])
    ciou = bbox_iou(box, box, kind="ciou")
    assert ciou.item() == pytest.approx(1.0, abs=1e-6)
    assert (1 - ciou).item() == pytest.approx(0.0, abs=1e-6)


def test_giou_diou_ciou_known_values() -> None:
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 1.0, 3.0, 3.0])  # inter 1, union 7, hull 3x3, centres sqrt(2) apart
    assert bbox_iou(a, b, xywh=False).item() == pytest.approx(1 / 7, abs=1e-6)
    assert bbox_iou(a, b, xywh=False, kind="giou").item() == pytest.approx(-5 / 63, abs=1e-6)
    assert bbox_iou(a, b, xywh=False, kind="diou").item() == pytest.approx(2 / 63, abs=1e-6)
    # same aspect ratio: the CIoU aspect term vanishes
    assert bbox_iou(a, b, xywh=False, kind="ciou").item() == pytest.approx(2 / 63, abs=1e-6)
    # xywh input gives the same
    a_xywh, b_xywh = torch.tensor([1.0, 1.0, 2.0, 2.0]), torch.tensor([2.0, 2.0, 2.0, 2.0])
    assert bbox_iou(a_xywh, b_xywh, kind="giou").item() == pytest.approx(-5 / 63, abs=1e-6)


def test_ciou_below_iou_for_offset_boxes() -> None:
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 1.0, 4.0, 2.0])  # offset and a different aspect ratio
    iou = bbox_iou(a, b, xywh=False).item()
    diou = bbox_iou(a, b, xywh=False, kind="diou").item()
    ciou = bbox_iou(a, b, xywh=False, kind="ciou").item()
    assert ciou < diou < iou


def test_iou_broadcasts_and_is_finite_for_empty_boxes() -> None:
    pred = torch.zeros(4, 1, 4, requires_grad=True)  # zero-size boxes
    target = torch.rand(1, 5, 4)
    ciou = bbox_iou(pred, target, kind="ciou")
    assert ciou.shape == (4, 5)
    ciou.sum().backward()
    assert torch.isfinite(ciou).all()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_unknown_iou_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        bbox_iou(torch.zeros(4), torch.zeros(4), kind="eiou")  # type: ignore[arg-type]


# --- assignment ---------------------------------------------------------------------------


def test_assignment_of_one_target_gives_centre_and_two_neighbours() -> None:
    found = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3).assign(raw_outputs(), one_target())
    p3, p4, p5 = found
    # P3 anchors in grid units: (1.25, 1.625), (2, 3.75), (4.125, 2.875); box is 1x1.
    # Anchor 2 is 4.125x wider than the box, over anchor_t = 4.
    cells = {
        (a, gj, gi)
        for a, gj, gi in zip(
            p3.anchor.tolist(), p3.grid_y.tolist(), p3.grid_x.tolist(), strict=True
        )
    }
    # centre (5.3, 7.8): cell (gi 5, gj 7), left half -> gi 4, lower half -> gj 8
    expected = {(a, gj, gi) for a in (0, 1) for gj, gi in ((7, 5), (7, 4), (8, 5))}
    assert cells == expected
    assert len(p3) == 6
    assert p3.image.tolist() == [0] * 6
    assert p3.classes.tolist() == [1] * 6
    # P4 / P5 anchors are all more than 4x the box (0.5 and 0.25 grid units)
    assert len(p4) == 0 and len(p5) == 0

    rows = zip(p3.grid_y.tolist(), p3.grid_x.tolist(), p3.box, strict=True)
    by_cell = {(gj, gi): box for gj, gi, box in rows}
    torch.testing.assert_close(by_cell[(7, 5)], torch.tensor([0.3, 0.8, 1.0, 1.0]))
    torch.testing.assert_close(by_cell[(7, 4)], torch.tensor([1.3, 0.8, 1.0, 1.0]))
    torch.testing.assert_close(by_cell[(8, 5)], torch.tensor([0.3, -0.2, 1.0, 1.0]))
    anchor_sizes = {tuple(wh) for wh in p3.anchor_wh.tolist()}
    assert anchor_sizes == {(1.25, 1.625), (2.0, 3.75)}


def test_assignment_stays_inside_grid_at_the_border() -> None:
    anchors = torch.tensor([[1.0, 1.0]])
    corner = torch.tensor([[0.0, 0.0, 0.2 / 10, 0.1 / 10, 0.1, 0.1], [0, 0, 1.0, 1.0, 0.1, 0.1]])
    found = assign_level(corner, anchors, grid_h=10, grid_w=10)
    assert found.grid_x.min() >= 0 and found.grid_x.max() <= 9
    assert found.grid_y.min() >= 0 and found.grid_y.max() <= 9
    # both centres sit in a corner cell whose nearest neighbours are outside the grid
    assert len(found) == 2


def test_assignment_rejects_bad_target_shape() -> None:
    with pytest.raises(ValueError, match=r"\(M, 6\)"):
        assign_level(torch.zeros(3, 5), torch.ones(3, 2), 4, 4)


# --- loss ---------------------------------------------------------------------------------


def test_loss_is_finite_positive_and_backpropagates() -> None:
    outputs = [out.requires_grad_() for out in raw_outputs()]
    targets = torch.tensor(
        [[0, 0, 0.5, 0.5, 0.3, 0.4], [1, 2, 0.2, 0.7, 0.05, 0.1], [1, 1, 0.8, 0.3, 0.6, 0.5]]
    )
    loss_fn = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3)
    total, parts = loss_fn(outputs, targets)
    assert torch.isfinite(total) and total.item() > 0
    assert (parts > 0).all()
    assert not parts.requires_grad
    torch.testing.assert_close(total.detach(), parts.sum() * 2)
    total.backward()
    for out in outputs:
        assert out.grad is not None and torch.isfinite(out.grad).all()
        assert out.grad.abs().sum() > 0


def test_no_targets_gives_only_objectness_loss() -> None:
    total, parts = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3)(raw_outputs(), torch.zeros(0, 6))
    box, obj, cls = parts.tolist()
    assert box == 0.0 and cls == 0.0 and obj > 0
    assert total.item() == pytest.approx(obj * 2, rel=1e-6)


def test_label_smoothing_sets_class_targets() -> None:
    assert smooth_bce_targets(0.0) == (1.0, 0.0)
    assert smooth_bce_targets(0.1) == pytest.approx((0.95, 0.05))
    # logits equal to logit(0.95) on the true class and logit(0.05) elsewhere are optimal
    # under eps = 0.1, so the class gradient vanishes; without smoothing it does not.
    targets = one_target()
    outputs = raw_outputs()
    logit = math.log(0.95 / 0.05)
    for out in outputs:
        out[..., 5:] = -logit
        out[..., 5 + 1] = logit
    grads = []
    for eps in (0.1, 0.0):
        inputs = [out.clone().requires_grad_() for out in outputs]
        hyp = LossConfig(label_smoothing=eps)
        YoloLoss(DEFAULT_ANCHORS, STRIDES, 3, hyp)(inputs, targets)[0].backward()
        grads.append(torch.cat([x.grad[..., 5:].flatten() for x in inputs if x.grad is not None]))
    assert grads[1].abs().max() > 0
    assert grads[0].abs().max() < 1e-3 * grads[1].abs().max()


def test_focal_loss_reduces_easy_negatives() -> None:
    logits = torch.full((100,), -6.0)
    plain = bce_with_logits(logits, torch.zeros(100))
    focal = bce_with_logits(logits, torch.zeros(100), focal_gamma=1.5)
    assert focal < plain / 100
    outputs = raw_outputs()
    for out in outputs:
        out[..., 4] = -6.0  # confident "no object" everywhere
    no_targets = torch.zeros(0, 6)
    obj_plain = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3)(outputs, no_targets)[1][1]
    focal_hyp = LossConfig(focal_gamma=1.5)
    obj_focal = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3, focal_hyp)(outputs, no_targets)[1][1]
    assert obj_focal < obj_plain / 100


def test_perfect_box_prediction_gives_small_box_loss() -> None:
    targets = torch.tensor([[0, 0, 0.31, 0.52, 0.1, 0.15], [1, 2, 0.7, 0.25, 0.4, 0.3]])
    loss_fn = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3)
    outputs = raw_outputs()
    for out, found in zip(outputs, loss_fn.assign(outputs, targets), strict=True):
        xy_prob = (found.box[:, :2] + 0.5) / 2
        wh_prob = (found.box[:, 2:] / found.anchor_wh).sqrt() / 2
        out[(*found.indices, slice(0, 4))] = torch.cat((xy_prob.logit(), wh_prob.logit()), 1)
    _, perfect = loss_fn(outputs, targets)
    _, random = loss_fn(raw_outputs(), targets)
    assert perfect[0].item() < 1e-5
    assert random[0].item() > 100 * max(perfect[0].item(), 1e-7)


def test_objectness_target_follows_gr() -> None:
    # d BCE / d logit = sigmoid(x) - target, times gain * balance * batch / elements
    targets = one_target()
    outputs = raw_outputs()
    scale = 1.0 * 4.0 * 2 / outputs[0][..., 4].numel()
    obj_grads = {}
    for gr in (0.0, 1.0):
        loss_fn = YoloLoss(DEFAULT_ANCHORS, STRIDES, 3, LossConfig(gr=gr))
        found = loss_fn.assign(outputs, targets)[0]
        inputs = [out.clone().requires_grad_() for out in outputs]
        loss_fn(inputs, targets)[0].backward()
        assert inputs[0].grad is not None
        obj_grads[gr] = inputs[0].grad[found.indices][:, 4]
    prob = outputs[0][found.indices][:, 4].sigmoid()
    # gr = 0: the target is exactly 1 whatever the box IoU
    torch.testing.assert_close(obj_grads[0.0], scale * (prob - 1.0))
    # gr = 1: the target is the IoU of random boxes, below 1
    implied_target = prob - obj_grads[1.0] / scale
    assert (implied_target >= 0).all() and (implied_target < 0.99).all()


def test_gains_scale_with_classes_levels_and_image_size() -> None:
    box, obj, cls = scaled_gains(LossConfig(img_size=320), num_classes=8, num_levels=3)
    assert box == pytest.approx(0.05)
    assert obj == pytest.approx(0.25)
    assert cls == pytest.approx(0.5 * 8 / 80)
    box, obj, cls = scaled_gains(LossConfig(), num_classes=80, num_levels=4)
    assert (box, obj, cls) == pytest.approx((0.0375, 0.75, 0.375))


def test_single_class_head_has_no_class_loss() -> None:
    targets = one_target()
    targets[:, 1] = 0
    _, parts = YoloLoss(DEFAULT_ANCHORS, STRIDES, 1)(raw_outputs(num_classes=1), targets)
    assert parts[2].item() == 0.0 and parts[0].item() > 0


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"loss\.label_smoothing"):
        LossConfig(label_smoothing=1.5)
    with pytest.raises(ConfigError, match=r"loss\.balance"):
        YoloLoss(DEFAULT_ANCHORS, STRIDES, 3, LossConfig(balance=(1.0, 1.0)))
    with pytest.raises(ValueError, match="classes"):
        bad_class = torch.tensor([[0, 5, 0.5, 0.5, 0.1, 0.1]])
        YoloLoss(DEFAULT_ANCHORS, STRIDES, 3)(raw_outputs(), bad_class)

"""YOLOv5-style detection loss: box IoU variants, target-to-anchor assignment and the loss.

The loss works on the raw training-mode outputs of a three-level anchor-based Detect head:
one tensor per level shaped ``(B, num_anchors, H_l, W_l, 5 + num_classes)`` holding
``x, y, w, h, objectness, class logits`` before any sigmoid. A prediction decodes, in grid
units of its level, as ``xy = 2 * sigmoid(t_xy) - 0.5 + cell`` and
``wh = (2 * sigmoid(t_wh)) ** 2 * anchor / stride``.

Targets are one ``(M, 6)`` tensor of ``[image_index, class, cx, cy, w, h]`` with the box
normalised to ``[0, 1]`` of the input image; each level scales it by its own grid size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from insightray.errors import ConfigError

IouKind = Literal["iou", "giou", "diou", "ciou"]

#: The reference gains are tuned for 80 classes, 640 px images and 3 levels.
_REFERENCE_CLASSES, _REFERENCE_IMG_SIZE, _REFERENCE_LEVELS = 80, 640, 3


def bbox_iou(
    box1: Tensor,
    box2: Tensor,
    xywh: bool = True,
    kind: IouKind = "iou",
    eps: float = 1e-7,
) -> Tensor:
    """Element-wise IoU, GIoU, DIoU or CIoU of two broadcastable sets of boxes.

    Args:
        box1: Boxes shaped ``(..., 4)``.
        box2: Boxes shaped ``(..., 4)``, broadcastable against ``box1``.
        xywh: ``True`` for ``(cx, cy, w, h)`` boxes, ``False`` for ``(x1, y1, x2, y2)``.
        kind: ``"iou"``; ``"giou"`` subtracts the empty share of the enclosing box;
            ``"diou"`` subtracts the squared centre distance over the squared enclosing
            diagonal; ``"ciou"`` also subtracts an aspect-ratio term ``alpha * v``.
        eps: Guard against division by zero for empty boxes.

    Returns:
        The score per box pair, shaped like the broadcast of the inputs without the last axis.

    Example:
        >>> a = torch.tensor([0.0, 0.0, 2.0, 2.0])
        >>> b = torch.tensor([1.0, 1.0, 3.0, 3.0])
        >>> round(bbox_iou(a, b, xywh=False).item(), 4)
        0.1429
    """
    if kind not in ("iou", "giou", "diou", "ciou"):
        raise ValueError(f"kind must be iou, giou, diou or ciou, not {kind!r}")
    if xywh:
        (cx1, cy1, w1, h1), (cx2, cy2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
        ax1, ax2, ay1, ay2 = cx1 - w1 / 2, cx1 + w1 / 2, cy1 - h1 / 2, cy1 + h1 / 2
        bx1, bx2, by1, by2 = cx2 - w2 / 2, cx2 + w2 / 2, cy2 - h2 / 2, cy2 + h2 / 2
    else:
        (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = box1.unbind(-1), box2.unbind(-1)
        w1, h1, w2, h2 = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    inter_w = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
    inter_h = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    inter = inter_w * inter_h
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if kind == "iou":
        return iou
    hull_w = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    hull_h = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    if kind == "giou":
        hull_area = hull_w * hull_h + eps
        return iou - (hull_area - union) / hull_area
    diagonal_sq = hull_w**2 + hull_h**2 + eps
    centre_dist_sq = ((ax1 + ax2 - bx1 - bx2) ** 2 + (ay1 + ay2 - by1 - by2) ** 2) / 4
    if kind == "diou":
        return iou - centre_dist_sq / diagonal_sq
    aspect = torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))
    v = (4 / math.pi**2) * aspect**2
    with torch.no_grad():  # alpha is a trade-off weight, not something to optimise
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre_dist_sq / diagonal_sq + alpha * v)


@dataclass(frozen=True)
class LossConfig:
    """Hyperparameters of :class:`YoloLoss`.

    The three gains are the reference values for 80 classes, 640 px images and three levels.
    :func:`scaled_gains` adapts them as the reference training script does:
    ``box *= 3 / nl``, ``cls *= nc / 80 * 3 / nl`` and ``obj *= (img_size / 640) ** 2 * 3 / nl``.

    Attributes:
        box: Box (CIoU) loss gain.
        obj: Objectness loss gain.
        cls: Classification loss gain (unused with a single class).
        anchor_t: A target matches an anchor when both side ratios ``max(r, 1/r)`` are below it.
        balance: Objectness weight per level, finest (P3) first.
        label_smoothing: ``eps``; class targets become ``1 - eps / 2`` and ``eps / 2``.
        focal_gamma: ``> 0`` turns both BCE losses into focal losses with this gamma.
        focal_alpha: Focal weight of positives (negatives get ``1 - focal_alpha``).
        cls_pw: Positive-class weight of the class BCE.
        obj_pw: Positive-class weight of the objectness BCE.
        gr: IoU-aware objectness ratio: target ``(1 - gr) + gr * IoU``.
        img_size: Training image size in pixels, used only to scale the objectness gain.

    Example:
        >>> LossConfig(label_smoothing=0.1).anchor_t
        4.0
    """

    box: float = 0.05
    obj: float = 1.0
    cls: float = 0.5
    anchor_t: float = 4.0
    balance: tuple[float, ...] = (4.0, 1.0, 0.4)
    label_smoothing: float = 0.0
    focal_gamma: float = 0.0
    focal_alpha: float = 0.25
    cls_pw: float = 1.0
    obj_pw: float = 1.0
    gr: float = 1.0
    img_size: int = 640

    def __post_init__(self) -> None:
        bad = [n for n in ("box", "obj", "cls", "focal_gamma") if getattr(self, n) < 0]
        bad += [n for n in ("cls_pw", "obj_pw", "img_size") if getattr(self, n) <= 0]
        bad += [n for n in ("focal_alpha", "gr") if not 0 <= getattr(self, n) <= 1]
        bad += ["anchor_t"] if self.anchor_t <= 1 else []
        bad += ["label_smoothing"] if not 0 <= self.label_smoothing < 1 else []
        if bad:
            value = getattr(self, bad[0])
            raise ConfigError(f"loss.{bad[0]}", f"{value} is out of range", "see LossConfig")


def scaled_gains(hyp: LossConfig, num_classes: int, num_levels: int) -> tuple[float, float, float]:
    """Box, objectness and class gains adapted to the class count, image size and levels.

    Args:
        hyp: Loss hyperparameters holding the reference gains.
        num_classes: Number of classes of the head.
        num_levels: Number of detection levels.

    Returns:
        ``(box_gain, obj_gain, cls_gain)``.

    Example:
        >>> scaled_gains(LossConfig(), num_classes=80, num_levels=3)
        (0.05, 1.0, 0.5)
    """
    level_scale = _REFERENCE_LEVELS / num_levels
    box = hyp.box * level_scale
    obj = hyp.obj * (hyp.img_size / _REFERENCE_IMG_SIZE) ** 2 * level_scale
    cls = hyp.cls * num_classes / _REFERENCE_CLASSES * level_scale
    return box, obj, cls


def smooth_bce_targets(eps: float) -> tuple[float, float]:
    """Positive and negative BCE targets under label smoothing ``eps``.

    Example:
        >>> smooth_bce_targets(0.1)
        (0.95, 0.05)
    """
    return 1.0 - 0.5 * eps, 0.5 * eps


def bce_with_logits(
    logits: Tensor,
    targets: Tensor,
    pos_weight: float = 1.0,
    focal_gamma: float = 0.0,
    focal_alpha: float = 0.25,
) -> Tensor:
    """Mean binary cross-entropy on logits, optionally focal-modulated.

    With ``focal_gamma > 0`` each element is weighted by ``alpha_t * (1 - p_t) ** gamma``
    where ``p_t`` is the probability given to the target, so confident correct predictions
    (easy examples) contribute almost nothing.

    Example:
        >>> easy_negative = torch.tensor([-6.0])
        >>> plain = bce_with_logits(easy_negative, torch.zeros(1))
        >>> bool(bce_with_logits(easy_negative, torch.zeros(1), focal_gamma=1.5) < plain)
        True
    """
    weight = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight, reduction="none")
    if focal_gamma > 0:
        prob = logits.sigmoid()
        p_t = targets * prob + (1 - targets) * (1 - prob)
        alpha_t = targets * focal_alpha + (1 - targets) * (1 - focal_alpha)
        loss = loss * alpha_t * (1 - p_t) ** focal_gamma
    return loss.mean()


@dataclass(frozen=True)
class LevelTargets:
    """The positives one level is trained on, one row per (target, anchor, cell) match.

    Attributes:
        image: Image index in the batch, ``(N,)`` long.
        anchor: Anchor index within the level, ``(N,)`` long.
        grid_y: Cell row ``gj``, ``(N,)`` long.
        grid_x: Cell column ``gi``, ``(N,)`` long.
        box: ``(N, 4)`` target ``(x, y, w, h)`` in grid units, ``x, y`` relative to the cell's
            top-left corner (within ``[-0.5, 1.5]``).
        anchor_wh: ``(N, 2)`` matched anchor size in grid units.
        classes: Class index, ``(N,)`` long.
    """

    image: Tensor
    anchor: Tensor
    grid_y: Tensor
    grid_x: Tensor
    box: Tensor
    anchor_wh: Tensor
    classes: Tensor

    @property
    def indices(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(b, a, gj, gi)`` to index a raw output ``(B, A, H, W, C)``."""
        return self.image, self.anchor, self.grid_y, self.grid_x

    def __len__(self) -> int:
        return int(self.image.shape[0])


def assign_level(
    targets: Tensor, anchors: Tensor, grid_h: int, grid_w: int, anchor_t: float = 4.0
) -> LevelTargets:
    """Match normalised targets to one level's anchors and cells.

    A target matches every anchor whose width and height ratios ``max(r, 1 / r)`` are both
    below ``anchor_t``. Each match is a positive in the cell holding the box centre and in
    the two neighbouring cells nearest the centre: left or right by which half of the cell
    the centre lies in horizontally, up or down likewise; a neighbour outside the grid, or a
    centre exactly on a cell's midline, adds no cell. Predicted offsets span ``(-0.5, 1.5)``,
    so the neighbours can still reach the centre.

    Args:
        targets: ``(M, 6)`` rows ``[image, class, cx, cy, w, h]``, box normalised to ``[0, 1]``.
        anchors: ``(A, 2)`` anchor sizes of this level in grid units (pixels / stride).
        grid_h: Feature-map height ``H_l``.
        grid_w: Feature-map width ``W_l``.
        anchor_t: Side-ratio threshold.

    Returns:
        The level's positives.

    Example:
        >>> t = torch.tensor([[0, 0, 5.3 / 20, 7.8 / 20, 1 / 20, 1 / 20]])
        >>> found = assign_level(t, torch.tensor([[1.0, 1.5]]), 20, 20)
        >>> found.grid_x.tolist(), found.grid_y.tolist()
        ([5, 4, 5], [7, 7, 8])
    """
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must be (M, 6), got {tuple(targets.shape)}")
    size = torch.tensor([grid_w, grid_h], device=targets.device, dtype=targets.dtype)
    xy, wh = targets[:, 2:4] * size, targets[:, 4:6] * size
    ratio = wh[None] / anchors[:, None].to(wh)  # (A, M, 2)
    worst = torch.maximum(ratio, 1 / ratio).amax(dim=-1)
    anchor_idx, target_idx = (worst < anchor_t).nonzero(as_tuple=True)

    centre = xy[target_idx]
    cell = torch.minimum(centre.floor().clamp(min=0), size - 1)  # a centre at 1.0 -> last cell
    frac = centre - cell
    lower = (frac < 0.5) & (cell >= 1)  # neighbour to the left / above exists
    upper = (frac > 0.5) & (cell <= size - 2)  # neighbour to the right / below exists

    picks, shifts = [torch.arange(len(cell), device=cell.device)], [torch.zeros_like(cell)]
    for axis in (0, 1):
        keep = lower[:, axis] | upper[:, axis]
        shift = torch.zeros_like(cell[keep])
        shift[:, axis] = torch.where(lower[keep, axis], -1.0, 1.0)
        picks.append(keep.nonzero(as_tuple=True)[0])
        shifts.append(shift)
    pick, shift = torch.cat(picks), torch.cat(shifts)

    match_cell = cell[pick] + shift
    rows = targets[target_idx[pick]]
    anchor_pick = anchor_idx[pick]
    return LevelTargets(
        image=rows[:, 0].long(),
        anchor=anchor_pick,
        grid_y=match_cell[:, 1].long(),
        grid_x=match_cell[:, 0].long(),
        box=torch.cat((centre[pick] - match_cell, wh[target_idx[pick]]), dim=1),
        anchor_wh=anchors.to(wh)[anchor_pick],
        classes=rows[:, 1].long(),
    )


class YoloLoss:
    """CIoU box loss + IoU-aware objectness BCE + class BCE over all detection levels.

    ``loss(raw_outputs, targets)`` returns ``(total * batch_size, [box, obj, cls])``, the
    components already multiplied by their gains (see :func:`scaled_gains`) and detached.
    The box loss is ``1 - CIoU`` averaged over the positives of each level. The objectness
    target is 0 for negatives and ``(1 - gr) + gr * IoU`` (IoU detached, clamped at 0) for
    positives, keeping the highest when several matches share a cell and anchor; each
    level's objectness loss is weighted by ``hyp.balance``. As in the reference, the class
    loss is skipped for single-class heads, where objectness already says "object".

    Args:
        anchors: ``(num_levels, num_anchors, 2)`` anchor sizes in pixels.
        strides: ``(num_levels,)`` level strides in pixels.
        num_classes: Number of classes.
        hyp: Loss hyperparameters.

    Example:
        >>> anchors = torch.tensor([[[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]]])
        >>> hyp = LossConfig(balance=(1.0,))
        >>> loss_fn = YoloLoss(anchors, torch.tensor([8.0]), num_classes=3, hyp=hyp)
        >>> total, parts = loss_fn([torch.randn(1, 3, 4, 4, 8)], torch.zeros(0, 6))
        >>> parts[0].item(), parts[2].item()
        (0.0, 0.0)
    """

    def __init__(
        self,
        anchors: Tensor,
        strides: Tensor | Sequence[float],
        num_classes: int,
        hyp: LossConfig | None = None,
    ) -> None:
        self.hyp = hyp if hyp is not None else LossConfig()
        strides_t = torch.as_tensor(strides, dtype=torch.float32).flatten()
        if anchors.ndim != 3 or anchors.shape[-1] != 2 or anchors.shape[0] != len(strides_t):
            raise ValueError(
                f"anchors must be (num_levels, num_anchors, 2) with one level per stride, "
                f"got {tuple(anchors.shape)} for {len(strides_t)} strides"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_levels = int(anchors.shape[0])
        if len(self.hyp.balance) != self.num_levels:
            raise ConfigError(
                "loss.balance",
                f"{len(self.hyp.balance)} weights for {self.num_levels} levels",
                "give one objectness weight per detection level",
            )
        self.num_classes = num_classes
        self.strides = strides_t
        self.anchors_grid = anchors.detach().float() / strides_t[:, None, None]
        self.box_gain, self.obj_gain, self.cls_gain = scaled_gains(
            self.hyp, num_classes, self.num_levels
        )

    def assign(self, raw_outputs: Sequence[Tensor], targets: Tensor) -> list[LevelTargets]:
        """Positives per level for ``targets``; grid sizes come from the raw outputs."""
        anchors = self.anchors_grid.to(targets.device)
        return [
            assign_level(targets, anchors[level], out.shape[2], out.shape[3], self.hyp.anchor_t)
            for level, out in enumerate(raw_outputs)
        ]

    def __call__(self, raw_outputs: Sequence[Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
        """Loss of one batch.

        Args:
            raw_outputs: One ``(B, A, H_l, W_l, 5 + num_classes)`` tensor per level.
            targets: ``(M, 6)`` rows ``[image, class, cx, cy, w, h]``, box in ``[0, 1]``.

        Returns:
            ``(total * B, tensor([box, obj, cls]))``; the total carries the gradient.
        """
        if len(raw_outputs) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} outputs, got {len(raw_outputs)}")
        device = raw_outputs[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        if targets.numel():
            classes = targets[:, 1]
            if bool((classes < 0).any()) or bool((classes >= self.num_classes).any()):
                raise ValueError(f"target classes must lie in [0, {self.num_classes - 1}]")
        hyp = self.hyp
        pos, neg = smooth_bce_targets(hyp.label_smoothing)
        loss_box = torch.zeros((), device=device)
        loss_obj = torch.zeros((), device=device)
        loss_cls = torch.zeros((), device=device)
        for level, (out, found) in enumerate(
            zip(raw_outputs, self.assign(raw_outputs, targets), strict=True)
        ):
            pred = out.float()
            obj_target = torch.zeros(pred.shape[:4], device=device)
            if len(found):
                hit = pred[found.indices]  # (N, 5 + nc)
                xy = hit[:, :2].sigmoid() * 2 - 0.5
                wh = (hit[:, 2:4].sigmoid() * 2) ** 2 * found.anchor_wh
                iou = bbox_iou(torch.cat((xy, wh), dim=1), found.box, kind="ciou")
                loss_box = loss_box + (1.0 - iou).mean()
                score = (1.0 - hyp.gr) + hyp.gr * iou.detach().clamp(min=0)
                b, a, gj, gi = found.indices
                _, num_anchors, grid_h, grid_w = obj_target.shape
                flat = ((b * num_anchors + a) * grid_h + gj) * grid_w + gi
                obj_target.view(-1).scatter_reduce_(0, flat, score, reduce="amax")
                if self.num_classes > 1:
                    cls_target = torch.full_like(hit[:, 5:], neg)
                    cls_target[torch.arange(len(found), device=device), found.classes] = pos
                    loss_cls = loss_cls + bce_with_logits(
                        hit[:, 5:], cls_target, hyp.cls_pw, hyp.focal_gamma, hyp.focal_alpha
                    )
            level_obj = bce_with_logits(
                pred[..., 4], obj_target, hyp.obj_pw, hyp.focal_gamma, hyp.focal_alpha
            )
            loss_obj = loss_obj + hyp.balance[level] * level_obj
        loss_box = loss_box * self.box_gain
        loss_obj = loss_obj * self.obj_gain
        loss_cls = loss_cls * self.cls_gain
        batch_size = raw_outputs[0].shape[0]
        total = (loss_box + loss_obj + loss_cls) * batch_size
        return total, torch.stack((loss_box, loss_obj, loss_cls)).detach()

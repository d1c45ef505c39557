"""Tests for the YOLOv5 family and its building blocks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from insightray.errors import ConfigError, ImageSizeError
from insightray.models import create_model, list_models
from insightray.models.detection import DEFAULT_ANCHORS, YoloV5, count_parameters, gflops
from insightray.models.layers import SPP, SPPF, Conv, Focus, fuse_conv_bn, space_to_depth


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def _randomise_batch_norms(model: nn.Module) -> None:
    """Give every batch norm non-trivial statistics so fusing has something to fold."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)


def test_yolov5s_two_classes_matches_reference_parameter_counts() -> None:
    model = YoloV5(num_classes=2, variant="s")
    # Trainable model as built (conv + batch norm), as the reference prints before training.
    assert count_parameters(model) == 7_025_023
    # After fusing batch norms, as the reference prints for validation: 7,015,519.
    assert count_parameters(model.fuse()) == 7_015_519


def test_yolov5s_coco_and_yolov5l_coco_match_reference_parameter_counts() -> None:
    assert count_parameters(YoloV5(num_classes=80, variant="s")) == 7_235_389
    large = YoloV5(num_classes=80, variant="l")
    assert count_parameters(large) == 46_563_709
    assert count_parameters(large.fuse()) == 46_533_693


def test_yolov5s_gflops_at_640() -> None:
    model = YoloV5(num_classes=2, variant="s")
    assert 15.5 <= gflops(model, 640) <= 16.1
    assert model.training  # mode restored


def test_detect_head_contract() -> None:
    model = YoloV5(num_classes=2, variant="n")
    detect = model.detect
    assert (detect.num_classes, detect.num_anchors, detect.num_levels) == (2, 3, 3)
    assert detect.num_outputs == 7
    assert detect.stride.tolist() == [8.0, 16.0, 32.0]
    assert detect.anchors.shape == (3, 3, 2)
    assert torch.equal(detect.anchors, torch.tensor(DEFAULT_ANCHORS, dtype=torch.float32))
    for head, stride in zip(detect.heads, (8, 16, 32), strict=True):
        assert isinstance(head, nn.Conv2d) and head.bias is not None
        bias = head.bias.view(3, 7)
        expected_objectness = math.log(8 / (640 / stride) ** 2)
        assert torch.allclose(bias[:, 4], torch.full((3,), expected_objectness))
        assert torch.allclose(bias[:, 5:], torch.full((3, 2), math.log(0.6 / (2 - 0.99))))


@pytest.mark.parametrize(("height", "width"), [(64, 64), (128, 96)])
def test_output_shapes_in_train_and_eval_mode(height: int, width: int) -> None:
    model = YoloV5(num_classes=2, variant="s")
    images = torch.rand(2, 3, height, width)
    expected_levels = [(2, 3, height // s, width // s, 7) for s in (8, 16, 32)]

    raw = model.train()(images)
    assert isinstance(raw, list)
    assert [tuple(level.shape) for level in raw] == expected_levels

    with torch.no_grad():
        predictions, raw_eval = model.eval()(images)
    cells = sum(3 * h * w for _, _, h, w, _ in expected_levels)
    assert predictions.shape == (2, cells, 7)
    assert [tuple(level.shape) for level in raw_eval] == expected_levels


def test_eval_predictions_decode_raw_outputs_into_pixels() -> None:
    model = YoloV5(num_classes=2, variant="n").eval()
    with torch.no_grad():
        predictions, raw = model(torch.rand(1, 3, 64, 96))
    level, anchor, row, col = 1, 2, 3, 5  # stride 16: a 4 x 6 grid
    _, _, height, width, _ = raw[level].shape
    flat_index = 3 * 8 * 12 + (anchor * height + row) * width + col
    cell = raw[level][0, anchor, row, col].sigmoid()
    stride = 16.0
    anchor_wh = torch.tensor(DEFAULT_ANCHORS[level][anchor])
    expected = torch.cat(
        (
            (cell[0:2] * 2 - 0.5 + torch.tensor([col, row])) * stride,
            (cell[2:4] * 2) ** 2 * anchor_wh,
            cell[4:],
        )
    )
    assert torch.allclose(predictions[0, flat_index], expected, atol=1e-5)


def test_single_channel_input() -> None:
    model = YoloV5(num_classes=1, variant="n", in_channels=1).eval()
    with torch.no_grad():
        predictions, _ = model(torch.rand(1, 1, 64, 64))
    assert predictions.shape == (1, 252, 6)
    assert gflops(model, (64, 64)) > 0


def test_space_to_depth_and_focus_stem() -> None:
    image = torch.rand(1, 3, 640, 640)
    rearranged = space_to_depth(image)
    assert rearranged.shape == (1, 12, 320, 320)
    assert torch.equal(rearranged[:, 0:3], image[..., 0::2, 0::2])
    assert torch.equal(rearranged[:, 3:6], image[..., 1::2, 0::2])
    assert torch.equal(rearranged[:, 6:9], image[..., 0::2, 1::2])
    assert torch.equal(rearranged[:, 9:12], image[..., 1::2, 1::2])

    focus = Focus(3, 32, kernel_size=3)
    assert focus.conv.conv.in_channels == 12
    assert focus(torch.rand(1, 3, 64, 64)).shape == (1, 32, 32, 32)

    model = YoloV5(num_classes=2, variant="n", stem="focus").eval()
    assert isinstance(model.layers[0], Focus)
    with torch.no_grad():
        predictions, _ = model(torch.rand(1, 3, 64, 64))
    assert predictions.shape == (1, 252, 7)


def test_sppf_computes_what_spp_5_9_13_computes() -> None:
    spp = SPP(32, 48, pool_sizes=(5, 9, 13)).eval()
    sppf = SPPF(32, 48, pool_size=5).eval()
    _randomise_batch_norms(spp)
    sppf.load_state_dict(spp.state_dict())  # same convolutions, different pooling
    features = torch.randn(2, 32, 20, 20)
    with torch.no_grad():
        assert sppf(features).shape == spp(features).shape == (2, 48, 20, 20)
        assert torch.allclose(sppf(features), spp(features), atol=1e-6)

    model = YoloV5(num_classes=2, variant="n", spp="spp").eval()
    with torch.no_grad():
        predictions, _ = model(torch.rand(1, 3, 64, 64))
    assert predictions.shape == (1, 252, 7)


def test_fuse_keeps_outputs() -> None:
    model = YoloV5(num_classes=3, variant="n").eval()
    _randomise_batch_norms(model)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        predictions, raw = model(images)
        fused = copy.deepcopy(model).fuse()
        fused_predictions, fused_raw = fused(images)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in fused.modules())
    assert torch.allclose(fused_predictions, predictions, atol=1e-4, rtol=0)
    for before, after in zip(raw, fused_raw, strict=True):
        assert torch.allclose(after, before, atol=1e-4, rtol=0)


def test_fuse_conv_bn_matches_conv_then_batch_norm() -> None:
    block = Conv(4, 8, kernel_size=3, stride=2, activation=False).eval()
    _randomise_batch_norms(block)
    assert isinstance(block.bn, nn.BatchNorm2d)
    fused = fuse_conv_bn(block.conv, block.bn)
    features = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(fused(features), block(features), atol=1e-5)


@pytest.mark.parametrize("name", list_models(task="detection"))
def test_every_registered_detector_builds_and_runs(name: str) -> None:
    model = create_model(name, num_classes=2)
    images = torch.rand(1, 3, 64, 64)
    raw = model.train()(images)
    assert [tuple(level.shape[2:]) for level in raw] == [(8, 8, 7), (4, 4, 7), (2, 2, 7)]
    with torch.no_grad():
        predictions, _ = model.eval()(images)
    assert predictions.shape == (1, 252, 7)


def test_all_five_sizes_are_registered() -> None:
    expected = {"yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x"}
    assert expected <= set(list_models(task="detection"))


def test_custom_anchors_are_kept_in_pixels() -> None:
    anchors = [[(4, 5), (8, 10)], [(16, 20), (32, 40)], [(64, 80), (128, 160)]]
    model = YoloV5(num_classes=2, variant="n", anchors=anchors)
    assert model.detect.num_anchors == 2
    assert model.detect.anchors[2, 1].tolist() == [128.0, 160.0]
    raw = model(torch.rand(1, 3, 64, 64))
    assert raw[0].shape == (1, 2, 8, 8, 7)


@pytest.mark.parametrize(
    "arguments",
    [
        {"variant": "q"},
        {"stem": "patchify"},
        {"spp": "aspp"},
        {"anchors": [[(10, 13)], [(30, 61)]]},
        {"anchors": [[(10, 13)], [(30, 61)], [(0, 5)]]},
    ],
)
def test_bad_configuration_raises_config_error(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        YoloV5(2, **arguments)  # type: ignore[arg-type]


def test_num_classes_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        YoloV5(0)


def test_input_size_must_be_a_multiple_of_32() -> None:
    model = YoloV5(num_classes=2, variant="n")
    with pytest.raises(ImageSizeError, match="multiples of 32"):
        model(torch.rand(1, 3, 64, 48))

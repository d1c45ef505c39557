"""The classification models: every registered builder, CBAM, self-attention, ImageNet init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from insightray.errors import ConfigError
from insightray.models import create_model, list_models, model_defaults
from insightray.models.classification import (
    Cbam,
    ChannelAttention,
    SelfAttention2d,
    SpatialAttention,
    lite0_imagenet_path,
    load_pretrained,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list_models(task="classification"))
def test_every_registered_classifier_builds_and_runs_at_a_tiny_size(name: str) -> None:
    model = create_model(name, num_classes=1, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 1)
    assert torch.isfinite(out).all()
    assert model.get_submodule(str(model_defaults(name).cam_layer)) is not None


def test_every_classifier_has_a_gradcam_layer() -> None:
    with_layer = {name for name in list_models() if model_defaults(name).cam_layer}
    assert with_layer == set(list_models(task="classification"))


def test_resnet_options_change_the_architecture() -> None:
    plain = create_model("resnet50_radiograph")
    adapted = create_model(
        "resnet50_radiograph", stem="3x3", norm="group", cbam_stages=(3, 4), attention=True
    )
    assert plain.stem[0].kernel_size == (7, 7) and plain.stem[0].in_channels == 1
    assert adapted.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in adapted.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in adapted.modules()) > 50
    assert isinstance(adapted.layer3[-1], Cbam) and isinstance(adapted.layer4[-1], Cbam)
    assert not isinstance(adapted.layer2[-1], Cbam)
    assert isinstance(adapted.attention, SelfAttention2d)
    assert adapted.attention.attention.num_heads == 8
    with torch.no_grad():
        assert adapted.eval()(torch.randn(1, 1, 96, 96)).shape == (1, 1)


def test_group_norm_gives_the_same_output_whatever_the_batch() -> None:
    model = create_model("resnet50_radiograph", norm="group").train()
    images = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        together = model(images)
        alone = model(images[:1])
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)


def test_custom_network_matches_the_issue() -> None:
    model = create_model("fracture_net", num_classes=2)
    assert model.stem[0].kernel_size == (7, 7) and model.stem[0].stride == (2, 2)
    assert model.stem[3].kernel_size == 3 and model.stem[3].stride == 2
    assert [len(model.get_submodule(f"layer{k}")) for k in range(1, 5)] == [3, 4, 6, 3]
    widths = [model.get_submodule(f"layer{k}")[-1].conv2.out_channels for k in range(1, 5)]
    assert widths == [64, 128, 256, 512]
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 2048), (2048, 2)]
    dropout = next(m for m in model.head if isinstance(m, nn.Dropout))
    assert dropout.p == 0.5
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 512, 512)).shape == (1, 2)


def test_cbam_applies_channel_then_spatial_attention() -> None:
    torch.manual_seed(0)
    block = Cbam(32, reduction=4)
    x = torch.randn(2, 32, 9, 9)
    expected = block.spatial(block.channel(x))
    torch.testing.assert_close(block(x), expected)
    channel = ChannelAttention(32, 4)
    average = channel.mlp(x.mean(dim=(2, 3), keepdim=True))
    maximum = channel.mlp(x.amax(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(channel(x), x * torch.sigmoid(average + maximum))
    spatial = SpatialAttention()
    pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    torch.testing.assert_close(spatial(x), x * torch.sigmoid(spatial.conv(pooled)))


def test_self_attention_uses_a_learned_two_d_position_encoding() -> None:
    block = SelfAttention2d(64, heads=8, size=(4, 6))
    assert block.row_embedding.shape == (1, 64, 4, 1)
    assert block.col_embedding.shape == (1, 64, 1, 6)
    assert block.row_embedding.requires_grad and block.col_embedding.requires_grad
    x = torch.randn(1, 64, 4, 6)
    block(x).sum().backward()
    assert block.row_embedding.grad is not None and block.row_embedding.grad.abs().sum() > 0
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)
    with pytest.raises(ConfigError):
        SelfAttention2d(60, heads=8)


def test_lite0_imagenet_init_sums_the_rgb_stem_for_gray_input() -> None:
    gray = create_model("efficientnet_lite0", num_classes=1, pretrained=True).eval()
    rgb = create_model("efficientnet_lite0", num_classes=1, in_channels=3, pretrained=True)
    rgb.load_state_dict(
        {k: v for k, v in rgb.state_dict().items() if not k.startswith("_fc")}
        | {k: v for k, v in gray.state_dict().items() if k.startswith("_fc")}
    )
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(image), rgb.eval()(image.repeat(1, 3, 1, 1)))
    scratch = create_model("efficientnet_lite0", num_classes=1)
    assert not torch.equal(scratch._conv_stem.weight, gray._conv_stem.weight)


def test_load_pretrained_reports_and_refuses_unrelated_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = create_model("efficientnet_lite0", num_classes=1)
    report = load_pretrained(model, lite0_imagenet_path())
    assert report.adapted == ["_conv_stem.weight"]
    assert report.skipped == ["_fc.bias", "_fc.weight"]
    other = tmp_path / "other.pt"
    torch.save({"unrelated.weight": torch.zeros(3)}, other)
    with pytest.raises(ConfigError):
        load_pretrained(model, other)
    resnet = create_model("resnet50_radiograph")
    saved = tmp_path / "resnet.pt"
    torch.save(resnet.state_dict(), saved)
    fresh = create_model("resnet50_radiograph", num_classes=3)
    report = load_pretrained(fresh, saved)
    assert report.skipped == ["head.2.bias", "head.2.weight"]
    torch.testing.assert_close(fresh.stem[0].weight, resnet.stem[0].weight)

"""Residual classifiers for radiographs: an adapted ResNet-50 and the custom 512x512x1 network.

Both are :class:`RadiographResNet`, built from torchvision's residual blocks:

- ``resnet50_radiograph``: ResNet-50 (bottleneck stages 3/4/6/3) taking 1-channel input, with
  the 7x7 first convolution optionally replaced by a 3x3 one (``stem="3x3"``, same stride and
  max-pool, so the same cost; a smaller first receptive field keeps thin fracture lines) and
  BatchNorm optionally replaced by GroupNorm (``norm="group"``: 32 groups, independent of the
  batch size, so stable at batches of 2-8).
- ``fracture_net``: the custom network of the fracture issue: input 512x512x1, Conv 7x7/2 (64),
  max-pool 3x3/2, basic residual stages of 3/4/6/3 blocks (64/128/256/512), global average
  pooling, FC 2048, dropout 0.5, FC to the classes.

Either takes :class:`~insightray.models.classification.attention.Cbam` after any stage
(``cbam_stages=(3, 4)``) and a multi-head self-attention block after the last stage
(``attention=True``). Grad-CAM's target layer is ``layer4``.

Example:
    >>> import torch
    >>> from insightray.models import create_model
    >>> model = create_model("resnet50_radiograph", num_classes=1, stem="3x3", norm="group")
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from insightray.errors import ConfigError
from insightray.models.classification.attention import Cbam, SelfAttention2d
from insightray.models.registry import register_model

if TYPE_CHECKING:  # torchvision is imported when a model is built (it takes a second to load)
    from torchvision.models.resnet import BasicBlock, Bottleneck

__all__ = ["GRADCAM_LAYER", "RadiographResNet", "fracture_net", "resnet50_radiograph"]

#: The module Grad-CAM hooks in every :class:`RadiographResNet`.
GRADCAM_LAYER = "layer4"

STEMS = ("7x7", "3x3")
NORMS = ("batch", "group")
_GROUPS = 32


def _norm_layer(norm: str) -> Callable[[int], nn.Module]:
    if norm not in NORMS:
        raise ConfigError(f"norm {norm!r}", "unknown normalisation", f"use one of {NORMS}")
    if norm == "group":
        return lambda channels: nn.GroupNorm(min(_GROUPS, channels), channels)
    return nn.BatchNorm2d


class RadiographResNet(nn.Module):
    """A residual network with radiograph options, optional attention and an optional MLP head.

    Args:
        block: torchvision's ``BasicBlock`` or ``Bottleneck``.
        layers: Blocks per stage, e.g. ``(3, 4, 6, 3)``.
        num_classes: Outputs (1 for a single fracture logit).
        in_channels: Image channels.
        stem: ``"7x7"`` (stride 2) or ``"3x3"`` (stride 2) first convolution.
        norm: ``"batch"`` or ``"group"``.
        cbam_stages: Stages (1-4) followed by a CBAM block.
        attention: Add an 8-head self-attention block after the last stage.
        attention_grid: Grid size the attention's position tables are learnt for.
        hidden: Width of a hidden fully connected layer before the output (0: none).
        dropout: Dropout before the output layer.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1,
        in_channels: int = 1,
        *,
        stem: str = "7x7",
        norm: str = "batch",
        cbam_stages: Sequence[int] = (),
        attention: bool = False,
        attention_grid: Sequence[int] = (7, 7),
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ConfigError(f"stem {stem!r}", "unknown stem", f"use one of {STEMS}")
        if any(stage not in (1, 2, 3, 4) for stage in cbam_stages):
            raise ConfigError(f"cbam_stages {list(cbam_stages)}", "stages are 1 to 4", "")
        from torchvision.models.resnet import ResNet

        trunk = ResNet(block, list(layers), num_classes=num_classes, norm_layer=_norm_layer(norm))
        kernel = 7 if stem == "7x7" else 3
        trunk.conv1 = nn.Conv2d(in_channels, 64, kernel, 2, kernel // 2, bias=False)
        nn.init.kaiming_normal_(trunk.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        stages = [trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4]
        widths = [64 * block.expansion * 2**k for k in range(4)]
        for index, (stage, width) in enumerate(zip(stages, widths, strict=True), start=1):
            if index in cbam_stages:
                stage.append(Cbam(width))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        grid = (int(attention_grid[0]), int(attention_grid[1]))
        self.attention = SelfAttention2d(widths[-1], 8, grid) if attention else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = [nn.Flatten()]
        features = widths[-1]
        if hidden:
            head += [nn.Linear(features, hidden), nn.ReLU(inplace=True)]
            features = hidden
        head += [nn.Dropout(dropout), nn.Linear(features, num_classes)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(self.pool(self.attention(x)))  # type: ignore[no-any-return]


@register_model(
    "resnet50_radiograph", task="classification", in_channels=1, cam_layer=GRADCAM_LAYER
)
def resnet50_radiograph(num_classes: int = 1, in_channels: int = 1, **options: Any) -> nn.Module:
    """ResNet-50 for radiographs; ``options`` are :class:`RadiographResNet`'s keywords."""
    from torchvision.models.resnet import Bottleneck

    return RadiographResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, **options)


@register_model("fracture_net", task="classification", in_channels=1, cam_layer=GRADCAM_LAYER)
def fracture_net(num_classes: int = 1, in_channels: int = 1, **options: Any) -> nn.Module:
    """The custom 512x512x1 network: basic blocks 3/4/6/3, FC 2048, dropout 0.5."""
    from torchvision.models.resnet import BasicBlock

    options.setdefault("hidden", 2048)
    options.setdefault("dropout", 0.5)
    options.setdefault("attention_grid", (16, 16))
    return RadiographResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, **options)

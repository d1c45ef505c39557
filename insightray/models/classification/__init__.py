"""Image classification models: radiograph ResNets, EfficientNets, CBAM and self-attention.

Importing this package registers ``resnet50_radiograph``, ``fracture_net``,
``efficientnet_b4`` and ``efficientnet_lite0`` (task ``"classification"``, one input channel,
with the layer Grad-CAM hooks: :func:`~insightray.models.model_defaults`).

Example:
    >>> from insightray.models import list_models
    >>> list_models(task="classification")
    ['efficientnet_b4', 'efficientnet_lite0', 'fracture_net', 'resnet50_radiograph']
"""

from __future__ import annotations

from insightray.models.classification.attention import (
    Cbam,
    ChannelAttention,
    SelfAttention2d,
    SpatialAttention,
)
from insightray.models.classification.efficientnet import efficientnet_b4, efficientnet_lite0
from insightray.models.classification.pretrained import (
    PretrainedReport,
    lite0_imagenet_path,
    load_pretrained,
)
from insightray.models.classification.resnet import (
    RadiographResNet,
    fracture_net,
    resnet50_radiograph,
)

__all__ = [
    "Cbam",
    "ChannelAttention",
    "PretrainedReport",
    "RadiographResNet",
    "SelfAttention2d",
    "SpatialAttention",
    "efficientnet_b4",
    "efficientnet_lite0",
    "fracture_net",
    "lite0_imagenet_path",
    "load_pretrained",
    "resnet50_radiograph",
]

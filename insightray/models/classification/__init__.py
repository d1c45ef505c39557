"""Image classification models: radiograph ResNets, EfficientNets, CBAM and self-attention.

Importing this package registers ``resnet50_radiograph``, ``fracture_net``,
``efficientnet_b4`` and ``efficientnet_lite0`` (task ``"classification"``).

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
from insightray.models.classification.efficientnet import (
    B4_GRADCAM_LAYER,
    LITE0_GRADCAM_LAYER,
    efficientnet_b4,
    efficientnet_lite0,
)
from insightray.models.classification.pretrained import (
    PretrainedReport,
    lite0_imagenet_path,
    load_pretrained,
)
from insightray.models.classification.resnet import (
    GRADCAM_LAYER,
    RadiographResNet,
    fracture_net,
    resnet50_radiograph,
)

#: The layer Grad-CAM hooks, per registered classification model.
GRADCAM_LAYERS: dict[str, str] = {
    "resnet50_radiograph": GRADCAM_LAYER,
    "fracture_net": GRADCAM_LAYER,
    "efficientnet_b4": B4_GRADCAM_LAYER,
    "efficientnet_lite0": LITE0_GRADCAM_LAYER,
}

__all__ = [
    "GRADCAM_LAYERS",
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

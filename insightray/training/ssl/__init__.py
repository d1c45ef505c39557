"""Self-supervised pre-training (SimCLR, MoCo v2, BYOL, SwaV via ``lightly``) on unlabelled
radiographs: :func:`pretrain` writes a backbone checkpoint and card that classifiers start
from with ``init_weights`` and whose CSP layers load into a YOLOv5 detector."""

from __future__ import annotations

from insightray.training.ssl.backbone import SslBackbone
from insightray.training.ssl.pretrain import (
    METHODS,
    PretrainConfig,
    PretrainResult,
    SslObjective,
    pretrain,
)
from insightray.training.ssl.views import RadiographViews

__all__ = [
    "METHODS",
    "PretrainConfig",
    "PretrainResult",
    "RadiographViews",
    "SslBackbone",
    "SslObjective",
    "pretrain",
]

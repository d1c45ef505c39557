"""Model architectures, the registry that builds them by name, and model cards.

Importing this package registers the built-in models.

Example:
    >>> from insightray.models import create_model, list_models
    >>> list_models(task="detection")
    ['yolov5l', 'yolov5m', 'yolov5n', 'yolov5s', 'yolov5x']
    >>> model = create_model("yolov5s", num_classes=2)
"""

from __future__ import annotations

from insightray.models import classification, detection  # register the builders
from insightray.models.card import (
    CARD_VERSION,
    Calibration,
    Explain,
    Lineage,
    ModelCard,
    Preprocessing,
    Thresholds,
    load_card,
    save_card,
)
from insightray.models.registry import (
    ModelDefaults,
    create_model,
    list_models,
    model_defaults,
    model_task,
    register_model,
)

__all__ = [
    "CARD_VERSION",
    "Calibration",
    "Explain",
    "Lineage",
    "ModelCard",
    "ModelDefaults",
    "Preprocessing",
    "Thresholds",
    "classification",
    "create_model",
    "detection",
    "list_models",
    "load_card",
    "model_defaults",
    "model_task",
    "register_model",
    "save_card",
]

"""Fracture classification training: config, preprocessing, augmentation, losses, evaluation.

Example:
    >>> from insightray.training.fracture import FractureTrainConfig
    >>> FractureTrainConfig(model="resnet50_radiograph", loss="focal").loss
    'focal'
"""

from __future__ import annotations

from insightray.training.fracture.augmentation import AugmentSettings, FractureAugmentation
from insightray.training.fracture.config import (
    FractureTrainConfig,
    config_from_dict,
    config_to_dict,
    load_fracture_config,
)
from insightray.training.fracture.evaluation import (
    FolderScores,
    FractureEvaluation,
    evaluate_folder,
    evaluate_scores,
)
from insightray.training.fracture.losses import LOSSES, build_loss
from insightray.training.fracture.preprocessing import load_prepared, write_debug_images
from insightray.training.fracture.steps import LocalFit, StepRunner, train_local_epochs
from insightray.training.fracture.trainer import (
    FractureTrainResult,
    build_classifier,
    train_fracture,
)

__all__ = [
    "LOSSES",
    "AugmentSettings",
    "FolderScores",
    "FractureAugmentation",
    "FractureEvaluation",
    "FractureTrainConfig",
    "FractureTrainResult",
    "LocalFit",
    "StepRunner",
    "build_classifier",
    "build_loss",
    "config_from_dict",
    "config_to_dict",
    "evaluate_folder",
    "evaluate_scores",
    "load_fracture_config",
    "load_prepared",
    "train_fracture",
    "train_local_epochs",
    "write_debug_images",
]

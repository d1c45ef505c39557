"""Detector training and evaluation: config, data, the training loop and mAP evaluation.

Example:
    >>> from insightray.training.detection import TrainConfig, train_detector
    >>> config = TrainConfig(data="tbx11k/data.yaml", model="yolov5s", image_size=416)
    >>> train_detector(config).card_path  # doctest: +SKIP
    PosixPath('runs/detect/train/model/card.json')
"""

from __future__ import annotations

from insightray.training.detection.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_train_config,
)
from insightray.training.detection.data import (
    DetectionBatch,
    DetectionTrainData,
    EpochSampler,
    TrainValData,
    collate_detection,
    inverse_frequency_sampler,
    load_data_split,
    load_train_val,
)
from insightray.training.detection.distributed import is_main_process
from insightray.training.detection.evaluate import (
    EVAL_CONF,
    EVAL_IOU,
    collect_detections,
    evaluate_detector,
)
from insightray.training.detection.optim import (
    ModelEma,
    StepSettings,
    accumulation_steps,
    build_optimizer,
    lr_factor,
    step_settings,
)
from insightray.training.detection.steps import step_settings_for
from insightray.training.detection.trainer import (
    CSV_COLUMNS,
    TrainResult,
    fitness,
    read_run_config,
    train_detector,
)

__all__ = [
    "CSV_COLUMNS",
    "EVAL_CONF",
    "EVAL_IOU",
    "DetectionBatch",
    "DetectionTrainData",
    "EpochSampler",
    "ModelEma",
    "StepSettings",
    "TrainConfig",
    "TrainResult",
    "TrainValData",
    "accumulation_steps",
    "build_optimizer",
    "collate_detection",
    "collect_detections",
    "config_from_dict",
    "config_to_dict",
    "evaluate_detector",
    "fitness",
    "inverse_frequency_sampler",
    "is_main_process",
    "load_data_split",
    "load_train_config",
    "load_train_val",
    "lr_factor",
    "read_run_config",
    "step_settings",
    "step_settings_for",
    "train_detector",
]

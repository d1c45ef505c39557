"""The detector training configuration and its YAML form (unknown keys are errors).

A config file holds :class:`TrainConfig` fields at the top level, with the augmentation and
loss settings nested under ``augment`` and ``loss`` (fields of
:class:`~insightray.training.augment.AugmentConfig` and
:class:`~insightray.training.detection.loss.LossConfig`). ``augment.output_size`` and
``loss.img_size`` always follow ``image_size`` and need not be given.

Example:
    >>> config = TrainConfig(data="tbx11k/data.yaml", model="yolov5n", epochs=3)
    >>> config.nominal_batch, config.schedule
    (64, 'linear')
    >>> config_from_dict(config_to_dict(config)) == config
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError
from insightray.training.augment import AugmentConfig
from insightray.training.configfile import build_config, config_to_dict, read_config_file
from insightray.training.detection.loss import LossConfig

__all__ = ["TrainConfig", "config_from_dict", "config_to_dict", "load_train_config"]


SCHEDULES = ("cosine", "linear")
SAMPLERS = ("none", "inverse_frequency")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one detector training run needs; the defaults are YOLOv5's scratch recipe.

    Attributes:
        data: A ``data.yaml`` path (YOLO format, or ``format: vinbigdata``; see
            :func:`~insightray.training.detection.data.load_train_val`) or the same keys as a
            mapping. The number of classes comes from the data.
        model: Registered detector name, e.g. ``"yolov5s"``.
        init: A trained detector to start from (fine-tuning): a card, a model folder or a
            bundled name. Its card decides the architecture (``model`` is then ignored, and
            channel widths of a pruned model are kept), its weights and anchors are the
            start; AutoAnchor and the head's bias initialisation are skipped. Or an
            ``insightray pretrain`` folder: its self-supervised backbone is copied into a new
            ``model`` (of the same architecture) and the rest starts from random weights.
            Empty: random weights.
        channels: Image channels the model takes (grayscale is repeated).
        image_size: Square training and validation side, a multiple of 32.
        epochs: Number of epochs.
        batch_size: Images per optimiser micro-batch, summed over all processes.
        nominal_batch: Gradients are accumulated until about this many images were seen.
        lr0: Initial learning rate.
        lrf: Final learning rate as a fraction of ``lr0``.
        momentum: SGD (Nesterov) momentum.
        weight_decay: L2 decay of convolution weights (scaled to the nominal batch).
        warmup_epochs: Epochs (may be fractional) of linear learning-rate and momentum warm-up.
        warmup_momentum: Momentum at the start of warm-up.
        warmup_bias_lr: Learning rate of the biases at the start of warm-up.
        schedule: ``"cosine"`` or ``"linear"`` decay from ``lr0`` to ``lr0 * lrf``.
        ema: Keep an exponential moving average of the weights (validated and saved).
        amp: Mixed precision; used on CUDA only.
        patience: Stop after this many epochs without a better fitness (0: never).
        time_limit_min: Wall-clock budget of the run in minutes (0: none). After each epoch
            the epoch count is re-planned, never above ``epochs``, so the run ends within it
            at the pace of the recent epochs; the learning-rate schedule follows the count.
        val_interval: Validate every this many epochs (and always after the last).
        seed: Seed of every random generator.
        workers: Data-loading worker processes.
        cache_images: Decode the training images once and keep them in memory (about
            ``4 * image_size**2`` bytes per grayscale image, e.g. 0.5 GB for 500 at 512 px).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        augment: Augmentation settings.
        loss: Loss settings.
        autoanchor: Check the anchors against the training boxes and refit them if needed.
        sampler: ``"none"`` (shuffle) or ``"inverse_frequency"`` (over-sample rare classes).
        out: Output folder of the run.
        version: Version written into the model card.
        data_licence: Licence of the training data, written into the model card.
        training_data: Description of the training data for the card (default: derived).
        conf_threshold: Operating confidence threshold recorded in the card.
        iou_threshold: Operating NMS IoU threshold recorded in the card.
        teacher: A trained detector (card, model folder or bundled name) to distil from
            (see :mod:`~insightray.training.detection.distill`); empty: no distillation.
        distill_weight: Weight of the distillation term added to the YOLO loss.
        distill_feature_weight: Weight of neck-feature imitation inside that term (0: off).
    """

    data: str | dict[str, Any] = ""
    model: str = "yolov5s"
    init: str = ""
    channels: int = 3
    image_size: int = 640
    epochs: int = 100
    batch_size: int = 16
    nominal_batch: int = 64
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    schedule: str = "linear"
    ema: bool = True
    amp: bool = True
    patience: int = 100
    time_limit_min: float = 0.0
    val_interval: int = 1
    seed: int = 0
    workers: int = 2
    cache_images: bool = False
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    autoanchor: bool = True
    sampler: str = "none"
    out: str = "runs/detect/train"
    version: str = "0.1.0"
    data_licence: str = ""
    training_data: str = ""
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    teacher: str = ""
    distill_weight: float = 1.0
    distill_feature_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            _bad("image_size", self.image_size, "use a positive multiple of 32, e.g. 416 or 640")
        for name in ("epochs", "batch_size", "nominal_batch", "val_interval", "channels"):
            if getattr(self, name) < 1:
                _bad(name, getattr(self, name), "use a positive integer")
        for name in ("patience", "workers", "seed"):
            if getattr(self, name) < 0:
                _bad(name, getattr(self, name), "use zero or a positive integer")
        for name in ("lr0", "lrf", "momentum", "warmup_momentum", "conf_threshold"):
            if not 0 < getattr(self, name) <= 1:
                _bad(name, getattr(self, name), "use a value in (0, 1]")
        for name in ("weight_decay", "warmup_epochs", "warmup_bias_lr", "time_limit_min",
                     "distill_weight", "distill_feature_weight"):  # fmt: skip
            if getattr(self, name) < 0:
                _bad(name, getattr(self, name), "use a value >= 0")
        if not 0 <= self.iou_threshold <= 1:
            _bad("iou_threshold", self.iou_threshold, "use a value in [0, 1]")
        if self.schedule not in SCHEDULES:
            _bad("schedule", self.schedule, f"use one of {', '.join(SCHEDULES)}")
        if self.sampler not in SAMPLERS:
            _bad("sampler", self.sampler, f"use one of {', '.join(SAMPLERS)}")
        # The augmentation output and the loss's objectness scaling follow the image size.
        if self.augment.output_size != self.image_size:
            augment = dataclasses.replace(self.augment, output_size=self.image_size)
            object.__setattr__(self, "augment", augment)
        if self.loss.img_size != self.image_size:
            object.__setattr__(
                self, "loss", dataclasses.replace(self.loss, img_size=self.image_size)
            )


def _bad(name: str, value: Any, hint: str) -> None:
    raise ConfigError(f"train config {name}", f"{value!r} is not allowed", hint)


def config_from_dict(values: Mapping[str, Any], subject: str = "train config") -> TrainConfig:
    """Build a :class:`TrainConfig` from a mapping, refusing unknown keys and wrong types.

    Args:
        values: Top-level fields, with ``augment`` and ``loss`` as nested mappings.
        subject: Named in error messages (e.g. the YAML file).

    Raises:
        ConfigError: A key is unknown or a value has the wrong type or range.

    Example:
        >>> config_from_dict({"model": "yolov5n", "augment": {"mosaic": 0.5}}).augment.mosaic
        0.5
    """
    return build_config(
        TrainConfig, values, subject, {"augment": AugmentConfig, "loss": LossConfig}
    )


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a training config YAML, then apply ``overrides`` (``None`` values are ignored).

    Args:
        path: The YAML file; relative ``data`` paths in it are taken relative to the file.
        **overrides: Top-level fields that replace the file's values, e.g. ``epochs=3``.

    Raises:
        InputNotFoundError: The file does not exist.
        ConfigError: The YAML is invalid or holds unknown keys or bad values.

    Example:
        >>> load_train_config("configs/tbx11k.yaml", epochs=3).epochs  # doctest: +SKIP
        3
    """
    return config_from_dict(read_config_file(path, **overrides), str(path))

"""The fracture classifier's training configuration and its YAML form (unknown keys are errors).

A config file holds :class:`FractureTrainConfig` fields at the top level, with the image
enhancement under ``preprocessing`` (fields of
:class:`~insightray.imaging.enhance.RadiographEnhancement`) and the augmentation under
``augment`` (fields of :class:`~insightray.training.fracture.augmentation.AugmentSettings`).

Example:
    >>> config = config_from_dict({"model": "resnet50_radiograph", "loss": "focal",
    ...                            "preprocessing": {"clahe": True}})
    >>> config.loss, config.preprocessing.clahe, config.augment.rotation
    ('focal', True, 15.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError
from insightray.imaging.enhance import RadiographEnhancement
from insightray.training.configfile import build_config, config_to_dict, read_config_file
from insightray.training.fracture.augmentation import AugmentSettings
from insightray.training.fracture.losses import LOSSES

__all__ = ["FractureTrainConfig", "config_from_dict", "config_to_dict", "load_fracture_config"]

OPTIMIZERS = ("adamw", "sgd")
SAMPLERS = ("shuffle", "balanced")
OPERATING_RULES = ("youden", "sensitivity")


@dataclass(frozen=True)
class FractureTrainConfig:
    """Everything one fracture-classifier training run needs.

    Attributes:
        data: A folder or CSV in a layout :func:`~insightray.training.fracture.dataset.
            load_fracture_items` reads.
        model: Registered classification model, e.g. ``"efficientnet_lite0"``.
        model_kwargs: Architecture options of the builder (recorded in the card), e.g.
            ``{"cbam_stages": [3, 4]}``.
        pretrained: Start EfficientNet-Lite0 from the packaged ImageNet weights.
        init_weights: A local weights file to start from (any model; "" for none).
        image_size: Square network input (letterboxed), in pixels.
        epochs: Passes over the training split (ignored when ``max_steps`` is set).
        max_steps: Fixed budget of optimiser steps (0: use ``epochs``).
        batch_size: Images per step.
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov).
        lr: Peak learning rate.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay.
        momentum: SGD momentum.
        warmup_fraction: Share of the steps with a linear learning-rate warm-up.
        loss: ``"bce"``, ``"weighted_bce"``, ``"focal"`` or ``"smooth_bce"``.
        focal_gamma: Focusing parameter of the focal loss.
        label_smoothing: Epsilon of ``smooth_bce``.
        sampler: ``"shuffle"`` or ``"balanced"`` (class-balanced sampling with replacement).
        amp: Mixed precision (CUDA only; ignored on the CPU).
        eval_every: Validate every this many steps (0: once per epoch).
        patience: Stop after this many validations without a better AUC (0: never).
        val_fraction: Share of groups held out for validation (model selection).
        test_fraction: Share of groups held out for the final test.
        split_seed: Seed of the group split.
        seed: Seed of weights, sampling and augmentation.
        threads: Torch CPU threads (0: leave as is).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        operating_point: ``"youden"`` or ``"sensitivity"`` (at ``target_sensitivity``),
            chosen on the validation split and stored in the card.
        target_sensitivity: Sensitivity of the fixed-sensitivity operating point.
        preprocessing: Image enhancement (also applied at inference).
        augment: Training augmentation.
        cache_dir: Where decoded, enhanced, resized images are cached ("" : no cache).
        debug_images: Write each enhancement step of this many training images to
            ``out/debug/``.
        out: Output folder of the run.
        version: Version written into the model card.
        data_licence: Licence of the training data, for the card.
        training_data: Description of the training data, for the card.
    """

    data: str = ""
    model: str = "efficientnet_lite0"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    init_weights: str = ""
    image_size: int = 224
    epochs: int = 30
    max_steps: int = 0
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_fraction: float = 0.05
    loss: str = "bce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    sampler: str = "shuffle"
    amp: bool = True
    eval_every: int = 0
    patience: int = 10
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    operating_point: str = "youden"
    target_sensitivity: float = 0.9
    preprocessing: RadiographEnhancement = field(default_factory=RadiographEnhancement)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    cache_dir: str = ""
    debug_images: int = 0
    out: str = "runs/fracture/train"
    version: str = "0.1.0"
    data_licence: str = ""
    training_data: str = ""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("image_size", self.image_size >= 32, "use at least 32"),
            ("epochs", self.epochs >= 1, "use a positive integer"),
            ("max_steps", self.max_steps >= 0, "use 0 or a positive integer"),
            ("batch_size", self.batch_size >= 2, "use at least 2"),
            ("lr", self.lr > 0, "use a positive value"),
            ("weight_decay", self.weight_decay >= 0, "use a value >= 0"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "use a value in [0, 1)"),
            ("focal_gamma", self.focal_gamma >= 0, "use a value >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "use a value in [0, 1)"),
            ("eval_every", self.eval_every >= 0, "use 0 or a positive integer"),
            ("patience", self.patience >= 0, "use 0 or a positive integer"),
            ("debug_images", self.debug_images >= 0, "use 0 or a positive integer"),
            ("target_sensitivity", 0 < self.target_sensitivity <= 1, "use a value in (0, 1]"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"use one of {OPTIMIZERS}"),
            ("loss", self.loss in LOSSES, f"use one of {LOSSES}"),
            ("sampler", self.sampler in SAMPLERS, f"use one of {SAMPLERS}"),
            ("operating_point", self.operating_point in OPERATING_RULES, f"{OPERATING_RULES}"),
        ]
        for name, ok, hint in checks:
            if not ok:
                raise ConfigError(f"train config {name}", f"{getattr(self, name)!r}", hint)


def config_from_dict(
    values: Mapping[str, Any], subject: str = "train config"
) -> FractureTrainConfig:
    """Build a config from a mapping, refusing unknown keys and values of the wrong type.

    Raises:
        ConfigError: A key is unknown or a value is invalid.
    """
    sections = {"preprocessing": RadiographEnhancement, "augment": AugmentSettings}
    return build_config(FractureTrainConfig, values, subject, sections)


def load_fracture_config(path: str | Path, **overrides: Any) -> FractureTrainConfig:
    """Read a training config YAML, then apply ``overrides`` (``None`` values are ignored).

    Relative ``data`` paths in the file are taken relative to the file.

    Raises:
        InputNotFoundError: The file does not exist.
        ConfigError: The YAML is invalid or holds unknown keys or bad values.
    """
    return config_from_dict(read_config_file(path, **overrides), str(path))

"""``optimize detect --prune R``: a channel-pruned detector, fine-tuned, as a new model folder.

Three steps, each leaving a folder that loads like any other model:

1. ``OUT/pruned/``: the parent with ``R`` of its channels removed
   (:func:`~insightray.engine.prune.prune_network`, Torch-Pruning's dependency graph), its
   batch-norm statistics re-estimated on calibration images
   (:func:`~insightray.engine.prune.recalibrate_batchnorm`), its new convolution widths in
   the card's ``preprocessing.model_kwargs["channel_widths"]``;
2. ``OUT/finetune/``: a run of our detector trainer started from it (``TrainConfig.init``),
   validated once at the end; the last epoch's EMA weights are kept (no epoch is chosen on
   the validation split, which the result is evaluated on);
3. ``OUT/``: those weights with a card whose lineage names the parent and its SHA-256, the
   method ``pruned`` and its settings (ratio, importance, fine-tuning, parameters and GFLOPs
   before and after) and the fine-tuning data.

Example:
    >>> card = prune_detector("cxr-tbx11k-yolov5s", 0.3, "runs/pruned30",
    ...                       FineTune("tbx11k/data.yaml", epochs=3))  # doctest: +SKIP
    >>> card.lineage.method  # doctest: +SKIP
    'pruned'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from insightray.engine import load_model, write_model
from insightray.engine.preprocessing import prepare_image
from insightray.engine.prune import PruneReport, check_ratio, prune_network, recalibrate_batchnorm
from insightray.engine.weights import input_channels, load_torch_model
from insightray.errors import ConfigError
from insightray.imaging import read_image
from insightray.models import Lineage, ModelCard, Preprocessing, load_card
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.result import finish_run
from insightray.training.detection.trainer import train_detector

__all__ = ["FineTune", "fine_tune_config", "fine_tune_detector", "image_batches", "prune_detector"]

#: Images per forward pass when the batch-norm statistics are re-estimated.
BN_BATCH = 8


@dataclass(frozen=True)
class FineTune:
    """How the pruned network is fine-tuned (``epochs=0``: not at all).

    Attributes:
        data: The training ``data.yaml`` (its val split is scored once, at the end).
        epochs: Epochs of fine-tuning.
        lr0: Initial learning rate, decayed linearly to 1 % over the run (a few dozen CPU
            steps must recover what pruning removed, so not lower than from scratch).
        batch_size: Images per step.
        workers: Data-loading processes.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: Seed of the run.
    """

    data: str = ""
    epochs: int = 3
    lr0: float = 0.01
    batch_size: int = 8
    workers: int = 2
    device: str = "auto"
    seed: int = 0


def prune_detector(
    model: str | Path | None,
    ratio: float,
    out_dir: str | Path,
    fine_tune: FineTune,
    console: Console | None = None,
    calibration: Sequence[Path] = (),
) -> ModelCard:
    """Prune a detector, fine-tune it and write it as the model folder ``out_dir``.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        ratio: Fraction of the channels removed from each prunable layer, in (0, 1).
        out_dir: The new model folder (with ``pruned/`` and ``finetune/`` inside).
        fine_tune: The fine-tuning run's settings.
        console: Where progress goes.
        calibration: Training images to re-estimate the batch-norm statistics on (a few
            dozen; none keeps the parent's, which pruning has made wrong).

    Raises:
        ConfigError: A ratio outside (0, 1), a parent that is not a trained PyTorch YOLOv5,
            or fine-tuning without data.
        MissingExtraError: ``torch-pruning`` is not installed (``insightray[optimize]``).
    """
    check_ratio(ratio)
    if fine_tune.epochs > 0 and not fine_tune.data:
        raise ConfigError("optimize detect --prune", "no fine-tuning data", "pass --data")
    card_path, parent, network = load_torch_model(model)
    if not isinstance(network, YoloV5):
        raise ConfigError(str(card_path), "only YOLOv5 detectors are pruned", "pass one")
    report = prune_network(network, ratio, max(parent.input_size))
    seen = recalibrate_batchnorm(network, image_batches(calibration, parent))
    report = dataclasses.replace(report, bn_images=seen)
    target = Path(out_dir)
    pruned = write_model(target / "pruned", network, _pruned_card(parent, card_path, report, None))
    if fine_tune.epochs == 0:
        return write_model(target, network, pruned)
    config = fine_tune_config(fine_tune, target / "pruned", pruned, target / "finetune")
    tuned_path = fine_tune_detector(config, console)
    tuned = load_card(tuned_path)
    assert tuned.weights_file is not None
    weights = load_model(tuned, tuned_path.parent / tuned.weights_file)
    card = _pruned_card(parent, card_path, report, fine_tune, tuned.training_data)
    return write_model(target, weights, dataclasses.replace(card, metrics=tuned.metrics))


def fine_tune_config(
    fine_tune: FineTune, init: str | Path, card: ModelCard, out: str | Path
) -> TrainConfig:
    """The trainer's settings for fine-tuning ``init`` (whose card is ``card``) into ``out``.

    Every batch is an optimiser step (no accumulation to 64 images: a short fine-tune has few
    batches), with no warm-up (the weights are trained, and warm-up's high bias learning
    rate would undo the trained objectness biases), and one validation, after the last epoch.
    """
    return TrainConfig(
        data=fine_tune.data,
        init=str(init),
        channels=input_channels(card) or 3,
        image_size=max(card.input_size),
        epochs=fine_tune.epochs,
        batch_size=fine_tune.batch_size,
        nominal_batch=fine_tune.batch_size,
        lr0=fine_tune.lr0,
        warmup_epochs=0.0,
        warmup_bias_lr=fine_tune.lr0,
        val_interval=fine_tune.epochs,
        workers=fine_tune.workers,
        device=fine_tune.device,
        seed=fine_tune.seed,
        out=str(out),
        version=card.version,
        conf_threshold=card.thresholds.confidence or 0.25,
        iou_threshold=card.thresholds.iou or 0.45,
    )


def fine_tune_detector(
    config: TrainConfig,
    console: Console | None = None,
    prepare: Callable[[YoloV5], None] | None = None,
) -> Path:
    """Run the trainer (``prepare``: see :func:`train_detector`); return the card of its last
    epoch's EMA weights (``model_last/``)."""
    result = train_detector(config, console=console, prepare=prepare)
    last = finish_run(
        config,
        load_card(result.card_path).training_data,
        list(load_card(result.card_path).labels),
        Path(config.out),
        result.epochs_completed - 1,
        result.stopped_early,
        selection="last",
    )
    return last.card_path


def image_batches(paths: Sequence[Path], card: ModelCard) -> Iterator[torch.Tensor]:
    """The images prepared as the card says, :data:`BN_BATCH` at a time."""
    channels = input_channels(card) or 3
    for start in range(0, len(paths), BN_BATCH):
        images = [read_image(path).pixels for path in paths[start : start + BN_BATCH]]
        prepared = [prepare_image(image, card.input_size, channels,
                                  card.preprocessing.pad_value)[0] for image in images]  # fmt: skip
        yield torch.from_numpy(np.stack(prepared))


def _pruned_card(
    parent: ModelCard,
    card_path: Path,
    report: PruneReport,
    fine_tune: FineTune | None,
    data: str = "",
) -> ModelCard:
    widths = dict(parent.preprocessing.model_kwargs.get("channel_widths", {}))
    widths.update(report.channel_widths)
    preprocessing: Preprocessing = dataclasses.replace(
        parent.preprocessing,
        model_kwargs=dict(parent.preprocessing.model_kwargs) | {"channel_widths": widths},
    )
    epochs = 0 if fine_tune is None else fine_tune.epochs
    settings = report.settings() | {"fine_tune_epochs": epochs}
    if fine_tune is not None:
        settings |= {"fine_tune_lr0": fine_tune.lr0, "fine_tune_batch": fine_tune.batch_size}
    name = f"{card_path.parent.name} {parent.version}"
    tuned = f"fine-tuned {epochs} epochs (last EMA weights)" if epochs else "not fine-tuned"
    percent = round(report.ratio * 100)
    return dataclasses.replace(
        parent,
        version=f"{parent.version}+pruned{percent}",
        preprocessing=preprocessing,
        lineage=Lineage("pruned", name, parent.weights_sha256, settings, data),
        metrics={},
        notes=f"{name} with {percent} % of its channels pruned, {tuned}; evaluate it before "
        f"use. {parent.notes}",
    )

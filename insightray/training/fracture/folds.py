"""Group-aware K-fold cross-validation of the fracture classifier.

The held-out test groups are set aside first (the same group split as a single run:
``test_fraction`` and ``split_seed`` of the config) and never touched; the remaining groups
are dealt into ``K`` folds by scikit-learn's ``StratifiedGroupKFold`` (each source image's
copies in one fold, the fractured share alike across folds). Fold ``k`` trains on the other
folds and is selected (best validation AUC) and temperature-scaled on fold ``k``; its
predictions on fold ``k`` are the out-of-fold (OOF) predictions. Per fold: ROC AUC, the ECE of
the raw scores, and the ECE after a temperature fitted on the *other* folds' OOF logits
(cross-fitted, so no fold is calibrated on itself). Across folds: mean with a 95 % Student-t
interval. ``out/`` gets ``fold<k>/`` (a full training run each, with ``model/``), ``oof.csv``
(path, group, label, fold, logit, cross-fitted calibrated probability) and ``folds.json``.

Example:
    >>> config = FractureTrainConfig(data="bone_fracture_roboflow", max_steps=60)
    >>> result = train_fracture_folds(config, folds=3)  # doctest: +SKIP
    >>> result.summary["auc"]["mean"]  # doctest: +SKIP
    0.91
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.model_selection import StratifiedGroupKFold

from insightray.errors import ConfigError
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.dataset import (
    FractureItem,
    FractureSplits,
    load_fracture_items,
    split_by_group,
)
from insightray.training.fracture.trainer import train_fracture
from insightray.training.metrics.calibration import expected_calibration_error
from insightray.training.metrics.roc import roc_auc
from insightray.training.metrics.temperature import fit_temperature, scaled_probabilities

__all__ = ["FoldsResult", "group_folds", "mean_interval", "train_fracture_folds"]

Log = Callable[[str], None]


def group_folds(items: Sequence[FractureItem], folds: int, seed: int = 0) -> list[list[int]]:
    """Indices of ``items`` per fold: stratified by label, no group in two folds.

    Raises:
        ConfigError: Fewer than 2 folds, or fewer groups than folds.
    """
    groups = [item.group for item in items]
    if folds < 2:
        raise ConfigError("folds", f"{folds} is below 2", "use e.g. 5")
    if len(set(groups)) < folds:
        raise ConfigError("folds", f"only {len(set(groups))} groups for {folds} folds", "")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = [item.label for item in items]
    return [
        sorted(int(i) for i in held)
        for _, held in splitter.split(np.zeros(len(items)), labels, groups)
    ]


def mean_interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, standard deviation and Student-t interval of per-fold values.

    Example:
        >>> mean_interval([0.8, 0.9, 1.0])["mean"]
        0.9
    """
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
    half = float(stats.t.ppf(0.5 + level / 2, data.size - 1) * sd / np.sqrt(data.size))
    half = half if np.isfinite(half) else 0.0
    return {
        "mean": round(mean, 5),
        "sd": round(sd, 5),
        "ci_low": round(mean - half, 5),
        "ci_high": round(mean + half, 5),
    }


@dataclass(frozen=True)
class FoldsResult:
    """What a cross-validation run produced.

    Attributes:
        out: The run folder.
        cards: Each fold's model card.
        per_fold: Per fold: images, auc, ece_uncalibrated, ece_calibrated, temperature.
        summary: Per metric: mean, sd, ci_low, ci_high over folds.
        oof_path: The out-of-fold predictions CSV.
    """

    out: Path
    cards: list[Path]
    per_fold: list[dict[str, float]]
    summary: dict[str, dict[str, float]]
    oof_path: Path

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``folds.json``)."""
        return {
            "cards": [str(card) for card in self.cards],
            "per_fold": self.per_fold,
            "summary": self.summary,
            "oof": str(self.oof_path),
        }


def train_fracture_folds(config: FractureTrainConfig, folds: int, log: Log = print) -> FoldsResult:
    """Cross-validate ``config`` over ``folds`` group folds (see the module docstring).

    Raises:
        InputNotFoundError: The data is missing.
        ConfigError: Too few groups, or a fold without both classes.
    """
    pool = split_by_group(
        load_fracture_items(config.data),
        val_fraction=0.0,
        test_fraction=config.test_fraction,
        seed=config.split_seed,
    ).train
    indices = group_folds(pool, folds, seed=config.split_seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    cards: list[Path] = []
    fold_of = np.zeros(len(pool), dtype=np.int64)
    logits = np.zeros(len(pool), dtype=np.float64)
    for fold, held in enumerate(indices):
        held_set = set(held)
        splits = FractureSplits(
            train=[item for i, item in enumerate(pool) if i not in held_set],
            val=[pool[i] for i in held],
            test=[],
        )
        log(f"fold {fold + 1}/{folds}: {len(splits.train)} train / {len(held)} held out")
        fold_config = dataclasses.replace(config, out=str(out / f"fold{fold}"))
        result = train_fracture(fold_config, log=log, splits=splits)
        cards.append(result.card_path)
        fold_of[held] = fold
        logits[held] = result.val_logits
    labels = np.array([item.label for item in pool], dtype=np.int64)
    calibrated = np.zeros_like(logits)
    per_fold: list[dict[str, float]] = []
    for fold, held in enumerate(indices):
        others = fold_of != fold
        temperature = fit_temperature(labels[others], logits[others])
        calibrated[held] = scaled_probabilities(logits[held], temperature)
        y = labels[held]
        per_fold.append(
            {
                "fold": fold,
                "images": len(held),
                "positives": int(y.sum()),
                "auc": round(roc_auc(y, logits[held]), 5),
                "ece_uncalibrated": round(
                    expected_calibration_error(y, scaled_probabilities(logits[held], 1.0)), 5
                ),
                "ece_calibrated": round(expected_calibration_error(y, calibrated[held]), 5),
                "temperature": round(temperature, 5),
            }
        )
    summary = {
        name: mean_interval([row[name] for row in per_fold])
        for name in ("auc", "ece_uncalibrated", "ece_calibrated")
    }
    oof_path = out / "oof.csv"
    with oof_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group", "label", "fold", "logit", "probability"])
        for i, item in enumerate(pool):
            writer.writerow(
                [item.path, item.group, item.label, fold_of[i], logits[i], calibrated[i]]
            )
    cv = FoldsResult(out, cards, per_fold, summary, oof_path)
    (out / "folds.json").write_text(json.dumps(cv.to_dict(), indent=2) + "\n")
    auc = summary["auc"]
    log(
        f"{folds}-fold AUC {auc['mean']:.4f} [{auc['ci_low']:.4f}, {auc['ci_high']:.4f}]; "
        f"OOF predictions: {oof_path}"
    )
    return cv

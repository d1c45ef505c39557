"""Build a fracture classifier ensemble from cross-validation runs' out-of-fold predictions.

Each member is one ``train fracture --folds K`` run (one recipe: Lite0, ResNet-50, ...) over
the same labelled pool with the same folds. From the runs' ``oof.csv`` files (raw out-of-fold
logits per image) the combiner is fitted:

- ``mean``: a weighted average of member logits (the given weights, else equal), then a
  temperature fitted on the averaged out-of-fold logits;
- ``stacking``: scikit-learn's ``LogisticRegression`` on the members' out-of-fold logits (the
  meta-learner; its coefficients become the weights, its intercept the intercept).

The ensemble's own out-of-fold AUC and ECE are cross-fitted (the combiner fitted on the other
folds' rows, applied to each fold), so no image scores itself; the operating points are
chosen on those cross-fitted probabilities. The result is a model folder (``card.json``,
``ensemble.json`` naming copies of every fold model with their SHA-256) that
:func:`insightray.engine.load_predictor` opens as one classifier
(:mod:`insightray.engine.classification_ensemble`).

Example:
    >>> result = build_fracture_ensemble(["runs/cv-lite0", "runs/cv-resnet50"],
    ...                                  "runs/ensemble", method="stacking")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from insightray.engine.classification_ensemble import ENSEMBLE_FILE
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models import Calibration, ModelCard, Thresholds, load_card, save_card
from insightray.models.catalog import sha256_file
from insightray.training.fracture.evaluation import FractureEvaluation, evaluate_scores
from insightray.training.metrics.roc import roc_auc
from insightray.training.metrics.temperature import fit_temperature, scaled_probabilities

__all__ = ["EnsembleBuild", "build_fracture_ensemble", "fit_combiner"]

METHODS = ("mean", "stacking")


@dataclass(frozen=True)
class EnsembleBuild:
    """What building an ensemble produced.

    Attributes:
        card_path: The ensemble's card.
        weights: Member weights (stacking: the meta-learner's coefficients).
        intercept: Added to the weighted sum.
        temperature: Temperature of the combined logit (1.0 for stacking).
        members_auc: Each member's out-of-fold AUC.
        oof: The ensemble's cross-fitted out-of-fold evaluation.
    """

    card_path: Path
    weights: list[float]
    intercept: float
    temperature: float
    members_auc: dict[str, float]
    oof: FractureEvaluation

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "card": str(self.card_path),
            "weights": [round(w, 5) for w in self.weights],
            "intercept": round(self.intercept, 5),
            "temperature": round(self.temperature, 5),
            "members_oof_auc": {k: round(v, 5) for k, v in self.members_auc.items()},
            "oof": self.oof.to_dict(),
        }


def fit_combiner(
    logits: NDArray[np.float64],
    labels: NDArray[np.int64],
    method: str,
    weights: Sequence[float] | None = None,
) -> tuple[NDArray[np.float64], float, float]:
    """``(weights, intercept, temperature)`` of the combiner, fitted on ``(images, members)``
    out-of-fold logits.

    Raises:
        ConfigError: Unknown method, or weights of the wrong length or sign.
    """
    members = logits.shape[1]
    if method == "stacking":
        model = LogisticRegression(C=1.0, max_iter=1000).fit(logits, labels)
        return model.coef_[0].astype(np.float64), float(model.intercept_[0]), 1.0
    if method != "mean":
        raise ConfigError("method", f"{method!r} is unknown", f"use one of {METHODS}")
    chosen = np.ones(members) if weights is None else np.asarray(weights, dtype=np.float64)
    if chosen.shape != (members,) or (chosen < 0).any() or chosen.sum() <= 0:
        raise ConfigError("weights", f"need {members} non-negative weights", "one per run")
    chosen = chosen / chosen.sum()
    return chosen, 0.0, fit_temperature(labels, logits @ chosen)


def _read_run(run: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    folds_file, oof_file = run / "folds.json", run / "oof.csv"
    if not folds_file.is_file() or not oof_file.is_file():
        raise InputNotFoundError(
            str(run), "is not a cross-validation run", "run `train fracture --folds K` first"
        )
    with oof_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return json.loads(folds_file.read_text(encoding="utf-8")), rows


def build_fracture_ensemble(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    method: str = "mean",
    weights: Sequence[float] | None = None,
    target_sensitivity: float = 0.9,
    version: str = "0.1.0",
) -> EnsembleBuild:
    """Fit the combiner on the runs' out-of-fold logits and write the ensemble model folder.

    Raises:
        InputNotFoundError: A run folder is not a cross-validation run.
        ConfigError: The runs cover different images or folds, or bad weights/method.
    """
    if method not in METHODS:
        raise ConfigError("method", f"{method!r} is unknown", f"use one of {METHODS}")
    read = [_read_run(Path(run)) for run in runs]
    if not read:
        raise ConfigError("ensemble", "no runs given", "give one or more --run folders")
    reference = [(row["path"], row["fold"]) for row in read[0][1]]
    for run, (_, rows) in zip(runs, read, strict=True):
        if [(row["path"], row["fold"]) for row in rows] != reference:
            raise ConfigError(
                str(run), "covers other images or folds than the first run", "same data, seed"
            )
    rows = read[0][1]
    labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
    folds = np.array([int(row["fold"]) for row in rows], dtype=np.int64)
    logits = np.column_stack([[float(row["logit"]) for row in run_rows] for _, run_rows in read])
    names = [Path(run).resolve().name for run in runs]
    members_auc = {name: roc_auc(labels, logits[:, i]) for i, name in enumerate(names)}
    crossfit = np.zeros(len(rows))
    for fold in np.unique(folds):
        inside = folds == fold
        w, b, t = fit_combiner(logits[~inside], labels[~inside], method, weights)
        crossfit[inside] = scaled_probabilities(logits[inside] @ w + b, t)
    groups = [row["group"] for row in rows]
    oof = evaluate_scores(labels, crossfit, target_sensitivity=target_sensitivity, groups=groups)
    oof = evaluate_scores(
        labels,
        crossfit,
        threshold=oof.youden.threshold,
        target_sensitivity=target_sensitivity,
        groups=groups,
    )
    final_w, intercept, temperature = fit_combiner(logits, labels, method, weights)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    spec_members = []
    first_card: ModelCard | None = None
    for name, run, (summary, _) in zip(names, runs, read, strict=True):
        entries = []
        for index, card_file in enumerate(summary["cards"]):
            source = Path(card_file)
            source = source if source.is_absolute() else Path(run) / source
            if not source.is_file():
                source = Path(run) / f"fold{index}" / "model" / "card.json"
            card = load_card(source)
            first_card = first_card or card
            copy = target / "members" / name / f"fold{index}"
            copy.mkdir(parents=True, exist_ok=True)
            for file in source.parent.iterdir():
                if file.is_file() and not file.name.endswith(".onnx"):
                    shutil.copy2(file, copy / file.name)
            relative = (copy / "card.json").relative_to(target)
            entries.append({"card": relative.as_posix(), "sha256": card.weights_sha256})
        spec_members.append({"name": name, "weight": 0.0, "folds": entries})
    for entry, weight in zip(spec_members, final_w, strict=True):
        entry["weight"] = float(weight)
    spec = {"method": method, "members": spec_members, "intercept": intercept}
    spec_path = target / ENSEMBLE_FILE
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    assert first_card is not None
    card = ModelCard(
        name="classifier_ensemble",
        task="classification",
        version=version,
        labels=first_card.labels,
        input_size=first_card.input_size,
        preprocessing=first_card.preprocessing,
        thresholds=Thresholds(
            operating_point=oof.threshold,
            extra={
                "youden": oof.youden.threshold,
                "fixed_sensitivity": oof.fixed_sensitivity.threshold,
                "target_sensitivity": target_sensitivity,
            },
        ),
        calibration=Calibration(
            None if method == "stacking" else temperature,
            f"out-of-fold logits of {len(rows)} images",
        ),
        weights_file=ENSEMBLE_FILE,
        weights_sha256=sha256_file(spec_path),
        training_data=first_card.training_data,
        data_licence=first_card.data_licence,
        metrics={
            "oof_auc": oof.auc,
            "oof_auc_ci_low": oof.auc_ci[0],
            "oof_auc_ci_high": oof.auc_ci[1],
            "oof_ece": oof.ece,
            **{f"oof_auc_{name}": value for name, value in members_auc.items()},
        },
        notes=(
            f"Ensemble ({method}) of {len(runs)} cross-validated recipes "
            f"({', '.join(names)}), each the mean logit of its fold models. Metrics and the "
            "operating point are on cross-fitted out-of-fold probabilities. Grad-CAM: explain "
            "a member model. Research use only, not a medical device."
        ),
    )
    save_card(card, target / "card.json")
    return EnsembleBuild(
        target / "card.json", [float(w) for w in final_w], intercept, temperature, members_auc, oof
    )

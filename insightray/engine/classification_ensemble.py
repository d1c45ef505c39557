"""An ensemble of fracture classifiers as one model: weighted averaging or stacking.

An ensemble is a model card (task ``classification``) whose weights file is an
``ensemble.json`` (its SHA-256 in the card, like any weights):

.. code-block:: json

    {"method": "mean" | "stacking",
     "members": [{"name": "lite0", "weight": 0.5,
                  "folds": [{"card": "members/lite0/fold0/card.json", "sha256": "..."}]}],
     "intercept": 0.0}

Each member is one recipe, run as its cross-validation fold models; its score is the mean raw
logit of its folds. The ensemble's logit is ``intercept + sum(weight * member score)``: a
weighted average of logits (``mean``: non-negative weights summing to 1, intercept 0) or a
stacking meta-learner (``stacking``: a logistic regression fitted on out-of-fold member logits,
its coefficients as weights). The probability is ``sigmoid(logit / temperature)`` with the
card's ``calibration.temperature`` (fitted on out-of-fold data for ``mean``), and the label is
given at the card's operating point, as for a single model. Member weights are checked
against the SHA-256 the ensemble recorded for them.

Example:
    >>> from insightray.engine import load_predictor
    >>> ensemble = load_predictor("runs/ensemble", task="classification")  # doctest: +SKIP
    >>> ensemble.predict_paths(["hand.png"])[0].label  # doctest: +SKIP
    'fractured'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.engine.classification import FRACTURE_LABELS, FracturePredictor, FractureResult
from insightray.engine.weights import load_model, verify_checksum
from insightray.errors import ConfigError
from insightray.imaging import LoadedImage, read_image
from insightray.models import ModelCard, load_card

__all__ = ["ENSEMBLE_FILE", "ClassifierEnsemble", "EnsembleMember", "open_classifier_ensemble"]

#: The file name an ensemble card names as its weights.
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_METHODS = ("mean", "stacking")


@dataclass(frozen=True)
class EnsembleMember:
    """One recipe of the ensemble: its fold models and its weight."""

    name: str
    weight: float
    folds: tuple[FracturePredictor, ...]

    def logits(self, images: Sequence[NDArray[Any]]) -> NDArray[np.float64]:
        """Mean raw logit of the fold models."""
        scores = [fold.predict_logits(images) for fold in self.folds]
        return np.asarray(np.mean(scores, axis=0), dtype=np.float64)


class ClassifierEnsemble:
    """Fracture classifiers combined into one predictor (see the module docstring).

    Args:
        card: The ensemble's card (threshold, temperature).
        members: The member recipes.
        intercept: Added to the weighted sum of member logits.
        method: ``"mean"`` or ``"stacking"``.
    """

    def __init__(
        self,
        card: ModelCard,
        members: Sequence[EnsembleMember],
        intercept: float = 0.0,
        method: str = "mean",
    ) -> None:
        if card.thresholds.operating_point is None:
            raise ConfigError(f"model card {card.name}", "has no operating_point", "add it")
        if method not in ENSEMBLE_METHODS or not members:
            raise ConfigError(
                f"ensemble {card.name}", f"method {method!r} or no members", "rebuild it"
            )
        self.card = card
        self.members = tuple(members)
        self.intercept = float(intercept)
        self.method = method
        self.threshold = card.thresholds.operating_point
        self.temperature = card.calibration.temperature or 1.0

    def predict_logits(
        self, images: Sequence[NDArray[Any]], batch_size: int = 8
    ) -> NDArray[np.float64]:
        """The ensemble's raw logit per decoded image (before its temperature)."""
        total = np.full(len(images), self.intercept, dtype=np.float64)
        for member in self.members:
            total += member.weight * member.logits(images)
        return total

    def predict_arrays(
        self, images: Sequence[NDArray[Any]], batch_size: int = 8
    ) -> list[FractureResult]:
        """Classify decoded images at the ensemble's operating point."""
        logits = self.predict_logits(images, batch_size) / self.temperature
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * logits))
        return [
            FractureResult(float(p), FRACTURE_LABELS[int(p >= self.threshold)], self.threshold)
            for p in probabilities
        ]

    def predict(self, inputs: Sequence[LoadedImage | NDArray[Any]]) -> list[FractureResult]:
        """Classify images read with :func:`~insightray.imaging.read_image`, or arrays."""
        return self.predict_arrays(
            [item.pixels if isinstance(item, LoadedImage) else item for item in inputs]
        )

    def predict_paths(self, paths: Sequence[str | Path]) -> list[FractureResult]:
        """Read and classify image files."""
        return self.predict_arrays([read_image(path).pixels for path in paths])

    def warm_up(self) -> None:
        """Classify one blank image."""
        self.predict_arrays([np.zeros(self.card.input_size, np.float32)])


def open_classifier_ensemble(
    card: ModelCard, card_path: Path, device: str = "cpu"
) -> ClassifierEnsemble:
    """Open an ensemble card whose weights file is an ``ensemble.json``.

    Raises:
        CorruptFileError: The ensemble file or a member's weights differ from the recorded
            SHA-256.
        ConfigError: The ensemble file is malformed.
    """
    spec_path = card_path.parent / (card.weights_file or ENSEMBLE_FILE)
    verify_checksum(card, spec_path)
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        members = []
        for entry in spec["members"]:
            folds = []
            for fold in entry["folds"]:
                fold_card_path = spec_path.parent / fold["card"]
                fold_card = load_card(fold_card_path)
                if fold_card.weights_sha256 != fold["sha256"]:
                    raise ConfigError(
                        str(fold_card_path),
                        "its weights are not the ones the ensemble was built from",
                        "rebuild the ensemble",
                    )
                weights = fold_card_path.parent / (fold_card.weights_file or "")
                folds.append(
                    FracturePredictor(load_model(fold_card, weights), fold_card, device=device)
                )
            members.append(EnsembleMember(str(entry["name"]), float(entry["weight"]), tuple(folds)))
        return ClassifierEnsemble(
            card, members, float(spec.get("intercept", 0.0)), str(spec["method"])
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            str(spec_path), f"not an ensemble file ({error})", "rebuild the ensemble"
        ) from error

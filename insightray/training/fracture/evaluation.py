"""Evaluate fracture probabilities: AUC with a bootstrap interval, operating points, calibration.

:func:`evaluate_scores` turns labels and probabilities into a :class:`FractureEvaluation`:
ROC AUC with a 95 % percentile-bootstrap interval (resampling source-image groups when given,
since augmented copies of one image are not independent), the Youden point and the point at a
fixed sensitivity (0.90 by default), sensitivity, specificity and the confusion matrix at the
threshold in use, and the expected calibration error. :func:`evaluate_folder` runs a
predictor over a labelled folder (``images/`` plus ``images.csv`` with ``image`` and
``fractured``, or the other layouts of :mod:`insightray.training.fracture.dataset`), reports
ECE and NLL before and after the card's temperature (:class:`CalibrationReport`) and, given
YOLO boxes, the Grad-CAM pointing game (:mod:`insightray.training.fracture.pointing`).

Example:
    >>> report = evaluate_scores([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.9, 0.6, 0.4],
    ...                          threshold=0.5, resamples=200)
    >>> report.auc, report.sensitivity, report.specificity, report.confusion
    (0.8888888888888888, 0.6666666666666666, 0.6666666666666666, [[2, 1], [1, 2]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from insightray.engine.classification import FracturePredictor
from insightray.errors import InputNotFoundError
from insightray.imaging import read_image
from insightray.training.fracture.dataset import FractureItem, load_fracture_items
from insightray.training.fracture.pointing import (
    PointingGame,
    box_class_id,
    peak_in_boxes,
    read_yolo_boxes,
    summarise_pointing,
)
from insightray.training.metrics.calibration import (
    expected_calibration_error,
    plot_reliability_diagram,
)
from insightray.training.metrics.classification import confusion_matrix
from insightray.training.metrics.roc import (
    OperatingPoint,
    bootstrap_auc_ci,
    point_at_sensitivity,
    point_at_threshold,
    roc_auc,
    youden_point,
)
from insightray.training.metrics.temperature import binary_nll, scaled_probabilities

__all__ = [
    "CalibrationReport",
    "FolderScores",
    "FractureEvaluation",
    "calibration_report",
    "evaluate_folder",
    "evaluate_scores",
]


@dataclass(frozen=True)
class FractureEvaluation:
    """Everything measured on one labelled set.

    Attributes:
        images: Images evaluated.
        positives: Fractured images among them.
        auc: ROC AUC.
        auc_ci: 95 % bootstrap interval of the AUC.
        threshold: The threshold ``sensitivity``, ``specificity`` and ``confusion`` use.
        sensitivity: True positive rate at ``threshold``.
        specificity: True negative rate at ``threshold``.
        confusion: ``[[TN, FP], [FN, TP]]`` at ``threshold``.
        youden: The Youden operating point on this set.
        fixed_sensitivity: The point reaching the target sensitivity on this set.
        ece: Expected calibration error (10 bins).
    """

    images: int
    positives: int
    auc: float
    auc_ci: tuple[float, float]
    threshold: float
    sensitivity: float
    specificity: float
    confusion: list[list[int]]
    youden: OperatingPoint
    fixed_sensitivity: OperatingPoint
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``evaluate fracture --json``)."""
        return {
            "images": self.images,
            "positives": self.positives,
            "auc": round(self.auc, 5),
            "auc_ci": [round(value, 5) for value in self.auc_ci],
            "threshold": round(self.threshold, 5),
            "sensitivity": round(self.sensitivity, 5),
            "specificity": round(self.specificity, 5),
            "confusion_matrix": self.confusion,
            "youden": _rounded(self.youden),
            "fixed_sensitivity": _rounded(self.fixed_sensitivity),
            "ece": round(self.ece, 5),
        }


def _rounded(point: OperatingPoint) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in point.to_dict().items()}


def evaluate_scores(
    labels: ArrayLike,
    probabilities: ArrayLike,
    *,
    threshold: float | None = None,
    target_sensitivity: float = 0.9,
    groups: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> FractureEvaluation:
    """Measure probabilities against 0/1 labels.

    Args:
        labels: 0/1 truth.
        probabilities: Fracture probabilities.
        threshold: Threshold for sensitivity/specificity/confusion; ``None`` uses this set's
            Youden point (only fair on the set the threshold is being chosen on).
        target_sensitivity: Sensitivity of the fixed-sensitivity point.
        groups: Source-image group per image, for a group bootstrap.
        resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Raises:
        ConfigError: Only one class present, or bad values.
    """
    truth = np.asarray(labels).astype(np.int64)
    scores = np.asarray(probabilities, dtype=np.float64)
    youden = youden_point(truth, scores)
    chosen = youden.threshold if threshold is None else float(threshold)
    at_threshold = point_at_threshold(truth, scores, chosen)
    matrix = confusion_matrix(truth, (scores >= chosen).astype(np.int64), 2)
    return FractureEvaluation(
        images=int(truth.size),
        positives=int(truth.sum()),
        auc=roc_auc(truth, scores),
        auc_ci=bootstrap_auc_ci(truth, scores, resamples=resamples, seed=seed, groups=groups),
        threshold=chosen,
        sensitivity=at_threshold.sensitivity,
        specificity=at_threshold.specificity,
        confusion=matrix.tolist(),
        youden=youden,
        fixed_sensitivity=point_at_sensitivity(truth, scores, target_sensitivity),
        ece=expected_calibration_error(truth, scores),
    )


@dataclass(frozen=True)
class CalibrationReport:
    """Calibration of a model's scores on one labelled set, before and after the card's
    temperature (equal when the card has none).

    Attributes:
        temperature: The card's temperature (1.0: uncalibrated).
        ece_before: ECE of ``sigmoid(logit)``.
        ece_after: ECE of ``sigmoid(logit / temperature)``, the probabilities the model gives.
        nll_before: Mean negative log-likelihood of ``sigmoid(logit)``.
        nll_after: The same after temperature scaling.
    """

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``evaluate fracture --json``, key ``calibration``)."""
        return {name: round(value, 5) for name, value in self.__dict__.items()}


def calibration_report(
    labels: ArrayLike, logits: ArrayLike, temperature: float
) -> CalibrationReport:
    """ECE and NLL of the raw and the temperature-scaled logits."""
    before = scaled_probabilities(logits, 1.0)
    after = scaled_probabilities(logits, temperature)
    return CalibrationReport(
        temperature=float(temperature),
        ece_before=expected_calibration_error(labels, before),
        ece_after=expected_calibration_error(labels, after),
        nll_before=binary_nll(labels, before),
        nll_after=binary_nll(labels, after),
    )


@dataclass(frozen=True)
class FolderScores:
    """Per-image scores of a labelled folder, with the evaluation.

    Attributes:
        paths: The images.
        labels: Their 0/1 labels.
        logits: Raw (uncalibrated) logits.
        probabilities: The model's probabilities (after its temperature, if any).
        evaluation: AUC, operating point, ECE of ``probabilities``.
        calibration: ECE/NLL before and after the card's temperature.
        pointing: The Grad-CAM pointing game, when boxes were given.
    """

    paths: list[Path]
    labels: list[int]
    logits: list[float]
    probabilities: list[float]
    evaluation: FractureEvaluation
    calibration: CalibrationReport
    pointing: PointingGame | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the measurements (per-image scores left out)."""
        return {
            **self.evaluation.to_dict(),
            "calibration": self.calibration.to_dict(),
            "pointing": None if self.pointing is None else self.pointing.to_dict(),
        }


def evaluate_folder(
    predictor: FracturePredictor,
    data: str | Path,
    *,
    target_sensitivity: float = 0.9,
    resamples: int = 2000,
    reliability_png: str | Path | None = None,
    boxes: str | Path | None = None,
    box_class: str = "fracture",
    batch_size: int = 8,
) -> FolderScores:
    """Classify every labelled image of ``data`` and evaluate at the card's operating point.

    Args:
        predictor: The classifier.
        data: A labelled folder or CSV (:func:`load_fracture_items`).
        target_sensitivity: Sensitivity of the fixed-sensitivity point.
        resamples: Bootstrap resamples (AUC and pointing intervals).
        reliability_png: Write the reliability diagram of the model's probabilities here;
            when the card has a temperature, ``<stem>_uncalibrated.png`` beside it shows the
            raw scores.
        boxes: Folder of YOLO label files (``<image stem>.txt``): adds the Grad-CAM pointing
            game on the fractured images (:mod:`~insightray.training.fracture.pointing`).
        box_class: The box class name looked up in the ``data.yaml`` beside ``boxes``.
        batch_size: Images per forward pass.

    Raises:
        InputNotFoundError: The folder, an image or the boxes folder is missing.
        InputError: A label, label file or image is invalid.
        ConfigError: The folder holds one class only, or no fractured image has a box.
    """
    items = load_fracture_items(data)
    logits: list[float] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        logits.extend(predictor.predict_logits([read_image(item.path).pixels for item in chunk]))
    labels = [item.label for item in items]
    probabilities = scaled_probabilities(logits, predictor.temperature).tolist()
    evaluation = evaluate_scores(
        labels,
        probabilities,
        threshold=predictor.threshold,
        target_sensitivity=target_sensitivity,
        groups=[item.group for item in items],
        resamples=resamples,
    )
    calibration = calibration_report(labels, logits, predictor.temperature)
    if reliability_png is not None:
        target = Path(reliability_png)
        calibrated = predictor.temperature != 1.0
        title = f"T = {predictor.temperature:.3f}, ECE {calibration.ece_after:.3f}"
        plot_reliability_diagram(labels, probabilities, target, title=title if calibrated else "")
        if calibrated:
            plot_reliability_diagram(
                labels,
                scaled_probabilities(logits, 1.0),
                target.with_name(f"{target.stem}_uncalibrated{target.suffix}"),
                title=f"uncalibrated, ECE {calibration.ece_before:.3f}",
            )
    pointing = (
        None if boxes is None else _pointing(predictor, items, Path(boxes), box_class, resamples)
    )
    return FolderScores(
        [item.path for item in items],
        labels,
        [float(value) for value in logits],
        probabilities,
        evaluation,
        calibration,
        pointing,
    )


def _pointing(
    predictor: FracturePredictor,
    items: list[FractureItem],
    boxes: Path,
    box_class: str,
    resamples: int,
) -> PointingGame:
    from insightray.explain import gradcam_heatmap

    if not boxes.is_dir():
        raise InputNotFoundError(str(boxes), "the boxes folder does not exist", "give --boxes DIR")
    class_id = box_class_id(boxes, box_class)
    hits, shares, groups = [], [], []
    for item in items:
        if item.label != 1:
            continue
        item_boxes = read_yolo_boxes(boxes / f"{item.path.stem}.txt", class_id)
        if not item_boxes:
            continue
        hit, share = peak_in_boxes(
            gradcam_heatmap(predictor, read_image(item.path).pixels), item_boxes
        )
        hits.append(hit)
        shares.append(share)
        groups.append(item.group)
    return summarise_pointing(hits, shares, groups=groups, resamples=resamples)

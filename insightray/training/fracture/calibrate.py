"""Calibrate an existing fracture classifier: fit a temperature, write a calibrated copy.

:func:`calibrate_fracture_model` runs the model over a labelled set that was never used as a
test set (its validation split, or out-of-fold data), fits one temperature on the raw logits
(:func:`~insightray.training.metrics.temperature.fit_temperature`), and writes a new model
folder: the same weights (same SHA-256) and any files beside them (the out-of-distribution
profile), and a card whose ``calibration`` section holds the temperature and what it was
fitted on. The card's operating points are moved onto the calibrated scale
(``t' = sigmoid(logit(t) / T)``): the same images get the same labels, since temperature
scaling keeps the ranking, and the thresholds are now calibrated probabilities.

Example:
    >>> result = calibrate_fracture_model("fracture-roboflow-lite0", "val.csv",
    ...                                   "runs/calibrated")  # doctest: +SKIP
    >>> result.temperature  # doctest: +SKIP
    2.4
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from insightray.engine import load_predictor
from insightray.errors import ConfigError
from insightray.models import Calibration, Thresholds, save_card
from insightray.models.catalog import default_model, resolve_card
from insightray.training.fracture.evaluation import (
    CalibrationReport,
    calibration_report,
    evaluate_folder,
)
from insightray.training.metrics.temperature import (
    fit_temperature,
    probability_logits,
    scaled_probabilities,
)

__all__ = ["CalibrationResult", "calibrate_fracture_model", "rescale_thresholds"]

CARD_FILE = "card.json"


@dataclass(frozen=True)
class CalibrationResult:
    """What calibrating produced.

    Attributes:
        card_path: The calibrated model's card.
        temperature: The fitted temperature.
        images: Images it was fitted on.
        report: ECE and NLL on those images before and after.
    """

    card_path: Path
    temperature: float
    images: int
    report: CalibrationReport

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``calibrate fracture --json``)."""
        return {
            "card": str(self.card_path),
            "temperature": round(self.temperature, 5),
            "images": self.images,
            **{f"fit_{k}": v for k, v in self.report.to_dict().items() if k != "temperature"},
        }


def rescale_thresholds(thresholds: Thresholds, temperature: float) -> Thresholds:
    """Move probability thresholds onto the temperature-scaled scale (same decisions).

    ``target_sensitivity`` and other non-threshold entries are left alone.

    Example:
        >>> rescale_thresholds(Thresholds(operating_point=0.5, extra={"youden": 0.5}), 2.0)
        Thresholds(confidence=None, iou=None, operating_point=0.5, extra={'youden': 0.5})
    """

    def move(value: float) -> float:
        return float(scaled_probabilities(probability_logits([value]), temperature)[0])

    extra = {
        name: value if name.startswith("target_") else move(value)
        for name, value in thresholds.extra.items()
    }
    point = thresholds.operating_point
    return dataclasses.replace(
        thresholds, operating_point=None if point is None else move(point), extra=extra
    )


def calibrate_fracture_model(
    model: str | Path | None,
    data: str | Path,
    out: str | Path,
    *,
    fitted_on: str = "",
    version: str | None = None,
) -> CalibrationResult:
    """Fit a temperature on ``data`` and write the calibrated model to ``out``.

    Args:
        model: ``--model`` value (card, folder or bundled name; ``None``: the default).
        data: Labelled images never used as a test set (any layout of
            :func:`~insightray.training.fracture.dataset.load_fracture_items`).
        out: Folder of the calibrated model (must not be the source folder).
        fitted_on: Description of ``data`` for the card (default: its path).
        version: Version of the calibrated card (default: the source's, ``+calibrated``).

    Raises:
        ConfigError: ``out`` is the source folder, or the data holds one class only.
        InputNotFoundError: The model or data is missing.
    """
    card_path = resolve_card(model, default=default_model("classification"))
    predictor = load_predictor(str(card_path), task="classification")
    source, target = card_path.parent.resolve(), Path(out).resolve()
    if source == target:
        raise ConfigError(str(out), "is the model's own folder", "give a new --out folder")
    scores = evaluate_folder(predictor, data, resamples=100)
    temperature = fit_temperature(scores.labels, scores.logits)
    report = calibration_report(scores.labels, scores.logits, temperature)
    card = predictor.card
    uncalibrated = rescale_thresholds(card.thresholds, 1.0 / predictor.temperature)
    calibrated = dataclasses.replace(
        card,
        version=version or f"{card.version}+calibrated",
        thresholds=rescale_thresholds(uncalibrated, temperature),
        calibration=Calibration(temperature, f"{fitted_on or data} ({len(scores.labels)} images)"),
        metrics=card.metrics
        | {
            "calibration_images": float(len(scores.labels)),
            "calibration_ece_before": report.ece_before,
            "calibration_ece_after": report.ece_after,
            "calibration_nll_before": report.nll_before,
            "calibration_nll_after": report.nll_after,
        },
    )
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.is_file() and file.name != CARD_FILE and not file.name.endswith(".onnx"):
            shutil.copy2(file, target / file.name)
    save_card(calibrated, target / CARD_FILE)
    return CalibrationResult(target / CARD_FILE, temperature, len(scores.labels), report)

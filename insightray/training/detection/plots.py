"""Training curves drawn with OpenCV from a run's ``metrics.csv`` (no plotting library).

Example:
    >>> plot_training_curves("runs/detect/train/metrics.csv")  # doctest: +SKIP
    [PosixPath('runs/detect/train/loss.png'), PosixPath('runs/detect/train/map.png')]
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np

from insightray.imaging.io import save_png

__all__ = ["LOSS_COLUMNS", "MAP_COLUMNS", "plot_curves", "plot_training_curves"]

LOSS_COLUMNS = ("box_loss", "obj_loss", "cls_loss")
MAP_COLUMNS = ("map40", "map50", "map50_95")
_COLOURS_BGR = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214))
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def plot_training_curves(metrics_csv: str | Path) -> list[Path]:
    """Write ``loss.png`` and ``map.png`` next to ``metrics.csv``; returns their paths."""
    path = Path(metrics_csv)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    epochs = [float(row["epoch"]) for row in rows]

    def series(column: str) -> list[float]:
        return [float(row[column]) if row.get(column) else math.nan for row in rows]

    return [
        plot_curves(
            epochs,
            {c: series(c) for c in LOSS_COLUMNS},
            "Training loss",
            path.with_name("loss.png"),
        ),
        plot_curves(
            epochs,
            {c: series(c) for c in MAP_COLUMNS},
            "Validation mAP (EMA model)",
            path.with_name("map.png"),
        ),
    ]


def plot_curves(
    xs: list[float], curves: dict[str, list[float]], title: str, path: str | Path
) -> Path:
    """Draw named curves (NaN values are gaps) over shared x values into a PNG.

    Example:
        >>> plot_curves([1, 2], {"loss": [0.5, 0.3]}, "Loss", "loss.png")  # doctest: +SKIP
        PosixPath('loss.png')
    """
    width, height, left, top, plot_w, plot_h = 820, 480, 70, 50, 560, 360
    canvas = np.full((height, width, 3), 255, np.uint8)
    values = np.array([v for c in curves.values() for v in c], dtype=np.float64)
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    high = high if high > low else low + 1.0
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x_high = x_high if x_high > x_low else x_low + 1.0

    def pixel(x: float, y: float) -> tuple[int, int]:
        return (
            round(left + (x - x_low) / (x_high - x_low) * plot_w),
            round(top + (1 - (y - low) / (high - low)) * plot_h),
        )

    black, grey = (0, 0, 0), (215, 215, 215)
    for fraction in np.linspace(0, 1, 6):
        y_value = low + fraction * (high - low)
        x_value = x_low + fraction * (x_high - x_low)
        cv2.line(canvas, pixel(x_low, y_value), pixel(x_high, y_value), grey, 1)
        cv2.line(canvas, pixel(x_value, low), pixel(x_value, high), grey, 1)
        px, py = pixel(x_low, y_value)
        cv2.putText(canvas, f"{y_value:.3g}", (px - 60, py + 5), _FONT, 0.4, black, 1)
        px, py = pixel(x_value, low)
        cv2.putText(canvas, f"{x_value:.3g}", (px - 10, py + 18), _FONT, 0.4, black, 1)
    cv2.rectangle(canvas, pixel(x_low, high), pixel(x_high, low), black, 1)
    cv2.putText(canvas, title, (left, top - 20), _FONT, 0.6, black, 1, cv2.LINE_AA)
    cv2.putText(canvas, "epoch", (left + plot_w // 2 - 20, top + plot_h + 40), _FONT, 0.5, black)
    for row, (name, ys) in enumerate(curves.items()):
        colour = _COLOURS_BGR[row % len(_COLOURS_BGR)]
        points = [pixel(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if len(points) > 1:
            cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        for point in points:
            cv2.circle(canvas, point, 3, colour, -1)
        y = top + 10 + row * 24
        cv2.line(canvas, (left + plot_w + 20, y), (left + plot_w + 44, y), colour, 3)
        cv2.putText(canvas, name, (left + plot_w + 52, y + 5), _FONT, 0.45, black, 1, cv2.LINE_AA)
    return save_png(canvas, path)

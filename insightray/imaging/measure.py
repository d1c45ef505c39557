"""Reading-room measurements in image pixel coordinates: length and angle.

A length is in millimetres when the image's spacing is known (``PixelSpacing`` gives the
size in the patient; ``ImagerPixelSpacing`` only at the detector, so the value is flagged as
uncalibrated for magnification), otherwise in pixels. The viewer computes the same values in
the browser (``measure.js``); the service recomputes them from the saved points.

Example:
    >>> length([(0, 0), (300, 400)], (0.1, 0.1), "PixelSpacing")
    {'value': 50.0, 'unit': 'mm', 'warning': None}
    >>> round(angle([(10, 0), (0, 0), (0, 10)]), 6)
    90.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["IMAGER_SPACING_WARNING", "angle", "length", "spacing_warning"]

#: Said wherever a distance was calibrated with ImagerPixelSpacing only.
IMAGER_SPACING_WARNING = (
    "calibrated at the detector (ImagerPixelSpacing): anatomy is magnified, true size smaller"
)

Point = Sequence[float]


def spacing_warning(spacing_source: str | None) -> str | None:
    """The caveat a distance carries for the attribute its spacing came from."""
    return IMAGER_SPACING_WARNING if spacing_source == "ImagerPixelSpacing" else None


def length(
    points: Sequence[Point],
    spacing: Sequence[float] | None,
    spacing_source: str | None = "PixelSpacing",
) -> dict[str, Any]:
    """The distance between two ``(x, y)`` points; ``spacing`` is ``(row, column)`` in mm."""
    (x1, y1), (x2, y2) = points[0][:2], points[1][:2]
    dx, dy = x2 - x1, y2 - y1
    if spacing and spacing[0] > 0 and spacing[1] > 0:
        value = math.hypot(dx * spacing[1], dy * spacing[0])
        return {"value": round(value, 3), "unit": "mm", "warning": spacing_warning(spacing_source)}
    return {"value": round(math.hypot(dx, dy), 3), "unit": "px", "warning": None}


def angle(points: Sequence[Point]) -> float:
    """The angle in degrees at the middle point of three ``(x, y)`` points (0 to 180)."""
    (ax, ay), (bx, by), (cx, cy) = (p[:2] for p in points[:3])
    first = math.atan2(ay - by, ax - bx)
    second = math.atan2(cy - by, cx - bx)
    degrees = abs(math.degrees(first - second)) % 360.0
    return degrees if degrees <= 180.0 else 360.0 - degrees

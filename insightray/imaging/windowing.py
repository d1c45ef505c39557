"""Value-of-interest (VOI) mapping: DICOM windows and intensity normalisation to ``[0, 1]``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.imaging.types import Window


def apply_window(values: NDArray[np.floating[Any]], window: Window) -> NDArray[np.float32]:
    """Map modality values through a DICOM window to ``[0, 1]``.

    Implements PS3.3 C.11.2.1.2 (LINEAR) and C.11.2.1.3 (LINEAR_EXACT, SIGMOID) with an output
    range of 0 to 1, so ``apply_window(x) * (y_max - y_min) + y_min`` equals pydicom's
    ``apply_windowing``.

    Args:
        values: Modality values (after the modality LUT).
        window: The window to apply.

    Returns:
        A float32 array in ``[0, 1]``.

    Example:
        >>> apply_window(np.array([0.0, 40.0, 80.0]), Window(40, 80))
        array([0.       , 0.5063291, 1.       ], dtype=float32)
    """
    x = np.asarray(values, dtype=np.float32)
    center, width = float(window.center), float(window.width)
    if window.function == "SIGMOID":
        _require(width > 0, window)
        sigmoid = 1.0 / (1.0 + np.exp(-4.0 * (x - np.float32(center)) / np.float32(width)))
        return np.asarray(sigmoid, dtype=np.float32)
    if window.function == "LINEAR":
        _require(width >= 1, window)
        center, width = center - 0.5, width - 1.0
        if width == 0:  # a window of width 1 is a threshold at the centre
            return (x > center).astype(np.float32)
    elif window.function == "LINEAR_EXACT":
        _require(width > 0, window)
    else:
        raise ConfigError(
            "window",
            f"unknown VOI LUT function {window.function!r}",
            "use LINEAR, LINEAR_EXACT or SIGMOID",
        )
    out = (x - np.float32(center)) / np.float32(width) + np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def normalize_range(
    values: NDArray[np.floating[Any]], low: float, high: float
) -> NDArray[np.float32]:
    """Scale ``[low, high]`` linearly to ``[0, 1]`` and clip; a flat range gives zeros.

    Example:
        >>> normalize_range(np.array([0, 2048, 4095]), 0, 4095).round(2).tolist()
        [0.0, 0.5, 1.0]
    """
    x = np.asarray(values, dtype=np.float32)
    if high <= low:
        return np.zeros_like(x)
    out = (x - np.float32(low)) * np.float32(1.0 / (high - low))
    return np.clip(out, 0.0, 1.0, out=out)


def _require(ok: bool, window: Window) -> None:
    if not ok:
        raise ConfigError(
            "window",
            f"width {window.width} is too small for a {window.function} window",
            "give a width of at least 1 (LINEAR) or above 0 (LINEAR_EXACT, SIGMOID)",
        )

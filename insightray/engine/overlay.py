"""Draw detections on the original image and save it as an 8-bit colour PNG.

Boxes are drawn in original image pixels (``Detection.box_px``), one colour per class, with a
``"label 0.87"`` tag above each box (inside it when the box touches the top edge). Line width and
text size grow with the image so that overlays of 3000-pixel radiographs stay legible.

Example:
    >>> image = np.zeros((120, 160), np.float32)
    >>> box = Detection(0, "nodule", 0.9, (20.0, 30.0, 60.0, 70.0))
    >>> draw_detections(image, [box]).shape
    (120, 160, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.engine.detection import Detection
from insightray.errors import ConfigError
from insightray.imaging.io import save_png

__all__ = ["PALETTE", "class_colour", "draw_detections", "write_overlay"]

#: Distinct, saturated BGR colours that stand out on a grey radiograph; cycled by class id.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255),  # red
    (255, 157, 20),  # blue
    (31, 200, 255),  # amber
    (80, 220, 60),  # green
    (255, 80, 220),  # magenta
    (230, 230, 40),  # cyan
    (30, 120, 255),  # orange
    (180, 60, 140),  # purple
    (150, 255, 150),  # mint
    (120, 120, 255),  # salmon
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_COLOUR = (255, 255, 255)


def class_colour(class_id: int) -> tuple[int, int, int]:
    """Return the BGR colour of a class (the palette repeats after 10 classes).

    Example:
        >>> class_colour(0) == class_colour(len(PALETTE))
        True
    """
    return PALETTE[class_id % len(PALETTE)]


def draw_detections(
    pixels: NDArray[np.floating[Any]], detections: Sequence[Detection], show_scores: bool = True
) -> NDArray[np.uint8]:
    """Return an 8-bit BGR copy of a 2-D ``[0, 1]`` image with the detections drawn on it.

    Args:
        pixels: The original grayscale image, as :func:`~insightray.imaging.read_image` gives.
        detections: Boxes in that image's pixels.
        show_scores: Append the score to each class name.
    """
    image = np.asarray(pixels)
    if image.ndim != 2 or 0 in image.shape:
        raise ConfigError(
            f"image of shape {image.shape}", "expected a 2-D grayscale image", "pass read pixels"
        )
    grey = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    canvas: NDArray[np.uint8] = np.ascontiguousarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    side = max(image.shape)
    thickness = max(1, round(side / 400))
    font_scale = max(0.35, side / 1600)
    for detection in detections:
        colour = class_colour(detection.class_id)
        x1, y1, x2, y2 = (round(value) for value in detection.box_px)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_8)
        label = detection.class_name
        if show_scores:
            label = f"{label} {detection.score:.2f}"
        _draw_tag(canvas, label, (x1, y1), colour, font_scale, thickness)
    return canvas


def write_overlay(
    pixels: NDArray[np.floating[Any]],
    detections: Sequence[Detection],
    path: str | Path,
    show_scores: bool = True,
) -> Path:
    """Draw the detections (see :func:`draw_detections`) and write a PNG; returns its path.

    Example:
        >>> write_overlay(image.pixels, result.detections, "out/chest.png")  # doctest: +SKIP
        PosixPath('out/chest.png')
    """
    return save_png(draw_detections(pixels, detections, show_scores), path)


def _draw_tag(
    canvas: NDArray[np.uint8],
    text: str,
    corner: tuple[int, int],
    colour: tuple[int, int, int],
    font_scale: float,
    thickness: int,
) -> None:
    """Write ``text`` on a filled box of ``colour`` above ``corner`` (below it at the top)."""
    text_thickness = max(1, thickness - 1)
    (width, height), baseline = cv2.getTextSize(text, _FONT, font_scale, text_thickness)
    x, y = corner
    x = min(max(x, 0), max(canvas.shape[1] - width, 0))
    top = y - height - baseline if y - height - baseline >= 0 else y
    cv2.rectangle(canvas, (x, top), (x + width, top + height + baseline), colour, cv2.FILLED)
    cv2.putText(
        canvas,
        text,
        (x, top + height),
        _FONT,
        font_scale,
        _TEXT_COLOUR,
        text_thickness,
        cv2.LINE_AA,
    )

"""The Grad-CAM pointing game: does the heatmap's peak fall inside a fracture box?

For each fractured image that has at least one labelled fracture box (YOLO ``.txt`` files:
``class cx cy w h`` normalised to the image), the Grad-CAM heatmap of the fracture logit is
computed at the original image's size (:func:`insightray.explain.gradcam_heatmap`) and its
arg-max pixel is tested against the union of the boxes (Zhang et al., 2018, "Top-down neural
attention by excitation backprop", the pointing game). The hit rate comes with a 95 %
percentile-bootstrap interval over source-image groups (augmented copies of one source move
together), and with the chance rate: the mean share of the image the boxes cover, i.e. the hit
rate of a peak placed uniformly at random.

The box class is looked up by name (``fracture`` by default) in the ``data.yaml`` beside the
labels folder (YOLO's layout); without a ``data.yaml`` every box in the files counts.

Example:
    >>> heat = np.zeros((10, 10), np.float32); heat[2, 7] = 1.0
    >>> peak_in_boxes(heat, [(0.75, 0.25, 0.2, 0.2)])
    (True, 0.09)
    >>> summary = summarise_pointing([True, False, False, True], [0.1, 0.1, 0.2, 0.2],
    ...                              groups=["a", "a", "b", "c"], resamples=200)
    >>> summary.hits, summary.images, summary.rate, round(summary.chance, 3)
    (2, 4, 0.5, 0.15)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from insightray.errors import ConfigError, InputError

__all__ = [
    "Box",
    "PointingGame",
    "box_class_id",
    "box_mask",
    "peak_in_boxes",
    "read_yolo_boxes",
    "summarise_pointing",
]

#: A normalised YOLO box ``(cx, cy, w, h)``.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PointingGame:
    """The pointing game over a set of fractured images with boxes.

    Attributes:
        images: Fractured images with at least one box (the denominator).
        hits: Images whose heatmap peak lies inside a box.
        rate: ``hits / images``.
        rate_ci: 95 % group-bootstrap interval of ``rate``.
        chance: Mean share of the image the boxes cover (a random peak's hit rate).
    """

    images: int
    hits: int
    rate: float
    rate_ci: tuple[float, float]
    chance: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``evaluate fracture --json``, key ``pointing``)."""
        return {
            "images": self.images,
            "hits": self.hits,
            "rate": round(self.rate, 5),
            "rate_ci": [round(value, 5) for value in self.rate_ci],
            "chance": round(self.chance, 5),
        }


def box_class_id(labels_dir: Path, name: str = "fracture") -> int | None:
    """The class index of ``name`` in the ``data.yaml`` beside ``labels_dir``; ``None`` (every
    box counts) when there is no ``data.yaml``.

    Raises:
        ConfigError: The ``data.yaml`` is unreadable or does not name the class.
    """
    spec = labels_dir.parent / "data.yaml"
    if not spec.is_file():
        return None
    try:
        names = (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("names")
    except (yaml.YAMLError, AttributeError) as error:
        raise ConfigError(str(spec), "is not a YOLO data.yaml", "fix or remove it") from error
    listed = list(names.values()) if isinstance(names, dict) else list(names or [])
    if name not in listed:
        raise ConfigError(str(spec), f"names no class {name!r} ({listed})", "pass --box-class")
    return listed.index(name)


def read_yolo_boxes(label_file: Path, class_id: int | None) -> list[Box]:
    """Boxes of ``class_id`` (every box when ``None``) in a YOLO ``.txt``; ``[]`` if missing.

    Raises:
        InputError: A line is not ``class cx cy w h``.
    """
    if not label_file.is_file():
        return []
    boxes: list[Box] = []
    for number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            klass, cx, cy, w, h = int(fields[0]), *(float(v) for v in fields[1:5])
        except (ValueError, TypeError) as error:
            raise InputError(
                f"{label_file}:{number}", "is not 'class cx cy w h'", "fix the label file"
            ) from error
        if class_id is None or klass == class_id:
            boxes.append((cx, cy, w, h))
    return boxes


def box_mask(shape: tuple[int, int], boxes: Sequence[Box]) -> NDArray[np.bool_]:
    """The union of normalised boxes as a ``(rows, cols)`` mask (edges rounded outwards)."""
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    for cx, cy, w, h in boxes:
        top, bottom = int((cy - h / 2) * rows), int(np.ceil((cy + h / 2) * rows))
        left, right = int((cx - w / 2) * cols), int(np.ceil((cx + w / 2) * cols))
        mask[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
    return mask


def peak_in_boxes(heatmap: NDArray[Any], boxes: Sequence[Box]) -> tuple[bool, float]:
    """``(hit, share)``: whether the heatmap's arg-max lies in a box (an all-zero heatmap
    points nowhere: a miss), and the share of the image the boxes cover."""
    mask = box_mask((int(heatmap.shape[0]), int(heatmap.shape[1])), boxes)
    share = float(mask.mean())
    if not np.any(heatmap > 0):
        return False, share
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape[:2])
    return bool(mask[row, col]), share


def summarise_pointing(
    hits: Sequence[bool],
    shares: Sequence[float],
    *,
    groups: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> PointingGame:
    """Hit rate with a group-bootstrap 95 % interval, and the chance rate.

    Raises:
        ConfigError: No images, or lengths differ.
    """
    outcome = np.asarray(hits, dtype=np.float64)
    if outcome.size == 0:
        raise ConfigError("pointing game", "no fractured image has a fracture box", "check --boxes")
    if len(shares) != outcome.size or (groups is not None and len(groups) != outcome.size):
        raise ConfigError("pointing game", "hits, shares and groups differ in length", "")
    names = list(groups) if groups is not None else [str(i) for i in range(outcome.size)]
    clusters = [np.flatnonzero(np.asarray(names) == name) for name in dict.fromkeys(names)]
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(resamples):
        index = np.concatenate([clusters[c] for c in rng.integers(0, len(clusters), len(clusters))])
        rates.append(outcome[index].mean())
    low, high = np.percentile(rates, [2.5, 97.5]) if rates else (np.nan, np.nan)
    return PointingGame(
        images=int(outcome.size),
        hits=int(outcome.sum()),
        rate=float(outcome.mean()),
        rate_ci=(float(low), float(high)),
        chance=float(np.mean(shares)),
    )

"""Image-level uncertainty of a detector, for choosing which radiographs to label.

A detector gives boxes, not one probability, so an image's score comes from two signals:

- **box scores**: a box near 0.5 confidence is one the model cannot decide on. The image
  scores the most undecided of its boxes (binary entropy of the score, or one minus the
  margin ``|2s - 1|``); an image with no box above the low candidate threshold scores 0.
- **test-time augmentation (TTA) disagreement**: the image and its left-right mirror are
  detected, the mirror's boxes are flipped back, and each box is matched to its best
  same-class box in the other view. Disagreement is the score-weighted mean of
  ``1 - IoU`` over the boxes of both views: 0 when both views find the same boxes, 1 when
  they share none. (Flipping is the one augmentation that changes nothing about a
  radiograph's anatomy that a detector should care about, and it needs no dropout layers.)

Example:
    >>> a = Detection(0, "x", 0.5, (0.0, 0.0, 10.0, 10.0))
    >>> round(box_entropy([a]), 3)
    0.693
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.engine.detection import Detection, DetectionPredictor

__all__ = [
    "DetectionUncertainty",
    "box_entropy",
    "box_margin",
    "detection_uncertainty",
    "tta_disagreement",
]

_EPS = 1e-12


@dataclass(frozen=True)
class DetectionUncertainty:
    """The uncertainty signals of one image.

    Attributes:
        entropy: Highest binary entropy of a box score (nats).
        margin: Highest ``1 - |2s - 1|`` of a box score.
        tta: Flip disagreement in ``[0, 1]``.
        boxes: Boxes found on the unflipped image.
    """

    entropy: float
    margin: float
    tta: float
    boxes: int


def box_entropy(detections: Sequence[Detection]) -> float:
    """Highest binary entropy among the boxes' scores (0 without boxes)."""
    scores = np.clip(np.array([d.score for d in detections], np.float64), _EPS, 1 - _EPS)
    if not scores.size:
        return 0.0
    return float((-(scores * np.log(scores) + (1 - scores) * np.log(1 - scores))).max())


def box_margin(detections: Sequence[Detection]) -> float:
    """Highest ``1 - |2s - 1|`` among the boxes' scores (0 without boxes)."""
    scores = np.array([d.score for d in detections], np.float64)
    return float((1 - np.abs(2 * scores - 1)).max()) if scores.size else 0.0


def _iou(box: Sequence[float], others: NDArray[np.float64]) -> NDArray[np.float64]:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, _EPS)  # type: ignore[no-any-return]


def _unmatched_mass(boxes: Sequence[Detection], others: Sequence[Detection]) -> tuple[float, float]:
    """``(sum of score * (1 - best IoU), sum of scores)`` of ``boxes`` against ``others``."""
    lost, total = 0.0, 0.0
    for box in boxes:
        same = np.array([o.box_px for o in others if o.class_id == box.class_id], np.float64)
        best = float(_iou(box.box_px, same).max()) if len(same) else 0.0
        lost += box.score * (1 - best)
        total += box.score
    return lost, total


def tta_disagreement(plain: Sequence[Detection], mirrored: Sequence[Detection]) -> float:
    """Score-weighted ``1 - IoU`` between two views' boxes (both in the same frame)."""
    lost_a, total_a = _unmatched_mass(plain, mirrored)
    lost_b, total_b = _unmatched_mass(mirrored, plain)
    total = total_a + total_b
    return (lost_a + lost_b) / total if total > 0 else 0.0


def _flip_back(detections: Sequence[Detection], width: int) -> list[Detection]:
    out = []
    for d in detections:
        x1, y1, x2, y2 = d.box_px
        out.append(Detection(d.class_id, d.class_name, d.score, (width - x2, y1, width - x1, y2)))
    return out


def detection_uncertainty(
    predictor: DetectionPredictor, images: Sequence[NDArray[Any]], batch_size: int = 8
) -> list[DetectionUncertainty]:
    """Box-score and flip-TTA uncertainty of each 2-D image (use a low ``conf_threshold``
    on the predictor, e.g. 0.05, so undecided boxes are seen)."""
    views = [view for image in images for view in (image, np.ascontiguousarray(image[:, ::-1]))]
    results = predictor.predict_arrays(views, batch_size=batch_size)
    out = []
    for index, image in enumerate(images):
        plain = results[2 * index].detections
        mirrored = _flip_back(results[2 * index + 1].detections, image.shape[1])
        out.append(
            DetectionUncertainty(
                box_entropy(plain),
                box_margin(plain),
                tta_disagreement(plain, mirrored),
                len(plain),
            )
        )
    return out

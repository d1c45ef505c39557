"""Fuse detections from several models or views of an image: WBF, NMS or soft-NMS.

Ensembles and test-time augmentation both end here: each member (and each view: flipped,
rescaled) gives boxes on the original image; :func:`fuse_boxes` merges them class by class
with the ``ensemble-boxes`` package (Solovyev et al., the Weighted Boxes Fusion authors'
own implementation). That package wants corners normalised to ``[0, 1]``; we normalise by the
image's size here and map back. WBF's ``box_and_model_avg`` keeps scores within ``[0, 1]``
and lowers boxes that only some members or views found.

Example:
    >>> import numpy as np
    >>> a = (np.array([[10, 10, 50, 50]], np.float32), np.array([0.9], np.float32),
    ...      np.array([0]))
    >>> b = (np.array([[12, 10, 52, 50]], np.float32), np.array([0.7], np.float32),
    ...      np.array([0]))
    >>> boxes, scores, classes = fuse_boxes([a, b], [1.0, 1.0], (100, 100), Fusion())
    >>> boxes.astype(float).round(1).tolist(), round(float(scores[0]), 2), classes.tolist()
    ([[10.9, 10.0, 50.9, 50.0]], 0.8, [0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from insightray.engine.backends import Backend
from insightray.errors import ConfigError
from insightray.models.ensemble import Fusion

__all__ = ["BoxSet", "FusionMember", "fuse_boxes", "hflip_boxes"]

#: One image's boxes ``(N, 4)`` x1, y1, x2, y2 in original pixels, scores ``(N,)``, class ids.
BoxSet = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]


@dataclass(frozen=True)
class FusionMember:
    """One model taking part in a fused prediction.

    Attributes:
        backend: Runs a ``(B, C, H, W)`` batch to ``(B, N, 5 + classes)`` predictions.
        image_size: Its input ``(rows, cols)``.
        channels: Its input channels.
        pad_value: Its letterbox padding.
        weight: Its weight in the fusion.
        name: For messages.
    """

    backend: Backend
    image_size: tuple[int, int]
    channels: int
    pad_value: float
    weight: float = 1.0
    name: str = ""


def hflip_boxes(boxes: NDArray[np.float32], cols: int) -> NDArray[np.float32]:
    """Boxes found on a left-right mirrored image, mapped back to the image itself.

    Example:
        >>> hflip_boxes(np.array([[10, 5, 30, 9]], np.float32), 100).tolist()
        [[70.0, 5.0, 90.0, 9.0]]
    """
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = cols - boxes[:, 2], cols - boxes[:, 0]
    return flipped


def fuse_boxes(
    box_sets: Sequence[BoxSet],
    weights: Sequence[float],
    image_shape: tuple[int, int],
    fusion: Fusion,
) -> BoxSet:
    """Merge the box sets of several models or views of one image.

    Args:
        box_sets: One :data:`BoxSet` per model or view, boxes in original pixels.
        weights: One positive weight per box set.
        image_shape: The image's ``(rows, cols)``, to normalise the corners.
        fusion: Method and thresholds.

    Returns:
        The fused boxes (original pixels), scores and class ids, best first.

    Raises:
        ConfigError: The weights do not match the box sets.
    """
    if len(weights) != len(box_sets) or not box_sets:
        raise ConfigError(
            "fusion",
            f"{len(weights)} weights for {len(box_sets)} box sets",
            "give one weight per model or view",
        )
    from ensemble_boxes import nms, soft_nms, weighted_boxes_fusion

    rows, cols = image_shape
    scale = np.array([cols, rows, cols, rows], np.float64)
    boxes_list, scores_list, labels_list = [], [], []
    top = max(weights)
    for (boxes, scores, classes), weight in zip(box_sets, weights, strict=True):
        normal = np.clip(np.asarray(boxes, np.float64).reshape(-1, 4) / scale, 0.0, 1.0)
        keep = (normal[:, 2] > normal[:, 0]) & (normal[:, 3] > normal[:, 1])
        keep &= np.asarray(scores) >= fusion.skip_threshold
        score = np.asarray(scores, np.float64)[keep]
        if fusion.method != "wbf":  # the package's NMS divides by the weights' sum; we scale
            score = score * (weight / top)  # by the largest weight, keeping scores comparable
        boxes_list.append(normal[keep].tolist())
        scores_list.append(score.tolist())
        labels_list.append(np.asarray(classes)[keep].tolist())
    if not any(scores_list):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    if fusion.method == "wbf":
        fused, score, label = weighted_boxes_fusion(
            boxes_list,
            scores_list,
            labels_list,
            weights=list(weights),
            iou_thr=fusion.iou_threshold,
            skip_box_thr=fusion.skip_threshold,
            conf_type=fusion.conf_type,
        )
    elif fusion.method == "nms":
        fused, score, label = nms(boxes_list, scores_list, labels_list, fusion.iou_threshold)
    else:
        fused, score, label = soft_nms(
            boxes_list,
            scores_list,
            labels_list,
            iou_thr=fusion.iou_threshold,
            sigma=fusion.sigma,
            thresh=fusion.skip_threshold,
        )
    order = np.argsort(-np.asarray(score), kind="mergesort")
    return (
        (np.asarray(fused, np.float64)[order] * scale).astype(np.float32).reshape(-1, 4),
        np.asarray(score, np.float32)[order],
        np.asarray(label).astype(np.int64)[order],
    )

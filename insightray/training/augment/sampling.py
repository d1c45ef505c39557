"""Image-level weights that over-sample rare findings, for a ``WeightedRandomSampler``.

Chest X-ray detection sets are long-tailed (cardiomegaly everywhere, pneumothorax rare) and
mostly normal. Weighting each image by the inverse frequency of the classes it holds makes
the sampler show rare findings more often without touching the loss.

Example:
    >>> w = inverse_frequency_image_weights([[0], [0], [0], [1]], num_classes=2)
    >>> bool(w[3] > w[0])
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray


def inverse_frequency_image_weights(
    labels_per_image: Sequence[ArrayLike],
    num_classes: int,
    *,
    reduction: Literal["mean", "sum"] = "mean",
    empty_weight: float | None = None,
) -> NDArray[np.float64]:
    """Weight each image by the inverse frequencies of the classes present in it.

    A class's frequency is the number of images that contain it (an image with five nodules
    counts once). An image's weight is the ``mean`` (default) or ``sum`` of ``1 / frequency``
    over its distinct classes: ``mean`` does not favour crowded images, ``sum`` does. Weights
    are then scaled so that images with boxes average 1.0.

    Images without boxes (normal studies) are, by default, treated as one more pseudo-class
    "no finding" with its own inverse frequency, so as a group they are drawn about as often
    as any one class. Pass ``empty_weight`` to set their (scaled) weight directly instead:
    ``1.0`` draws a normal image as often as an average abnormal one, ``0.0`` never.

    Args:
        labels_per_image: one array of box labels per image (may be empty).
        num_classes: number of classes; labels must lie in ``[0, num_classes)``.
        reduction: how to combine the class weights of one image: ``"mean"`` or ``"sum"``.
        empty_weight: weight of images without boxes, or ``None`` for the pseudo-class rule.

    Returns:
        float64 ``(len(labels_per_image),)`` non-negative weights; all ones if no image has a
        box. Pass them to ``WeightedRandomSampler(weights, num_samples, replacement=True)``.

    Raises:
        ValueError: a label is out of range, ``num_classes < 1``, ``empty_weight < 0`` or an
            unknown ``reduction``.

    Example:
        >>> inverse_frequency_image_weights([[0], [0, 1], []], 2).round(3).tolist()
        [0.8, 1.2, 1.6]
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if empty_weight is not None and empty_weight < 0:
        raise ValueError(f"empty_weight must be >= 0, got {empty_weight}")
    present = [
        np.unique(np.asarray(labels, dtype=np.int64).reshape(-1)) for labels in labels_per_image
    ]
    image_counts = np.zeros(num_classes, dtype=np.float64)
    for classes in present:
        if classes.size and (classes[0] < 0 or classes[-1] >= num_classes):
            raise ValueError(f"labels {classes.tolist()} outside [0, {num_classes})")
        image_counts[classes] += 1.0
    class_weights = np.divide(
        1.0, image_counts, out=np.zeros_like(image_counts), where=image_counts > 0
    )
    combine = np.mean if reduction == "mean" else np.sum
    weights = np.array(
        [combine(class_weights[c]) if c.size else 0.0 for c in present], dtype=np.float64
    )
    empty = np.array([c.size == 0 for c in present], dtype=bool)
    if empty.all():
        return np.ones(len(present), dtype=np.float64)
    norm = float(weights[~empty].mean())
    weights /= norm
    if empty.any():
        weights[empty] = empty_weight if empty_weight is not None else 1.0 / (empty.sum() * norm)
    return weights

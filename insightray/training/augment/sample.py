"""The unit of detection augmentation and the box arithmetic every transform shares.

Coordinates are continuous pixel coordinates: pixel ``(row i, column j)`` covers
``[j, j + 1) x [i, i + 1)``, so a box that covers the whole image ``H x W`` is ``(0, 0, W, H)``.
Boxes are float32 ``(N, 4)`` rows ``x1, y1, x2, y2``; labels are int64 ``(N,)``.

Example:
    >>> import numpy as np
    >>> s = Sample(np.zeros((8, 10), np.float32), np.array([[1, 2, 5, 6]]), np.array([3]))
    >>> s.boxes.dtype, s.labels.dtype, (s.height, s.width)
    (dtype('float32'), dtype('int64'), (8, 10))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from insightray.errors import ConfigError

FloatImage = NDArray[np.float32]
Boxes = NDArray[np.float32]
Labels = NDArray[np.int64]
Matrix = NDArray[np.float64]

_EPS = 1e-9


@dataclass(frozen=True, eq=False, init=False)
class Sample:
    """One image with its boxes and labels; transforms return new samples, never mutate.

    Args:
        image: float32 ``(H, W)`` or ``(H, W, C)`` with values in ``[0, 1]``.
        boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in pixels (stored as float32); default none.
        labels: ``(N,)`` class indices (stored as int64); default none.

    Raises:
        ValueError: the image is not float32 2-D/3-D, or boxes and labels disagree in shape.

    Example:
        >>> s = Sample(np.ones((4, 4), np.float32))
        >>> len(s), s.boxes.shape
        (0, (0, 4))
    """

    image: FloatImage
    boxes: Boxes
    labels: Labels

    def __init__(self, image: FloatImage, boxes: ArrayLike = (), labels: ArrayLike = ()) -> None:
        is_array = isinstance(image, np.ndarray)
        if not is_array or image.dtype != np.float32 or image.ndim not in (2, 3):
            raise ValueError("Sample.image must be a float32 array of shape (H, W) or (H, W, C)")
        box_array = np.asarray(boxes, dtype=np.float32)
        box_array = box_array.reshape(0, 4) if box_array.size == 0 else box_array
        label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
        if box_array.ndim != 2 or box_array.shape[1] != 4:
            raise ValueError(f"Sample.boxes must have shape (N, 4), got {box_array.shape}")
        if len(box_array) != len(label_array):
            raise ValueError(f"{len(box_array)} boxes but {len(label_array)} labels")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "boxes", box_array)
        object.__setattr__(self, "labels", label_array)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])


class Transform(Protocol):
    """A single-sample augmentation: ``(sample, rng) -> sample``."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample: ...


class SampleSource(Protocol):
    """Anything indexable that yields samples: a ``list[Sample]`` or a map-style dataset."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@dataclass(frozen=True)
class BoxFilter:
    """Decides which boxes survive a geometric transform (a candidate filter).

    A box is kept when its clipped width and height are at least ``min_size`` pixels, its
    aspect ratio (long side over short side) is at most ``max_aspect_ratio``, and its clipped
    area is at least ``min_area_ratio`` of its area before the transform times ``area_scale``
    (the transform's area gain, ``|det A|`` for an affine map).

    Example:
        >>> before = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
        >>> after = np.array([[0, 0, 10, 10], [0, 0, 10, 0.5]], np.float32)
        >>> BoxFilter()(before, after).tolist()
        [True, False]
    """

    min_area_ratio: float = 0.1
    min_size: float = 2.0
    max_aspect_ratio: float = 20.0

    def __post_init__(self) -> None:
        check_range("BoxFilter.min_area_ratio", self.min_area_ratio, 0.0, 1.0)
        check_range("BoxFilter.min_size", self.min_size, 0.0, float("inf"))
        check_range("BoxFilter.max_aspect_ratio", self.max_aspect_ratio, 1.0, float("inf"))

    def __call__(self, before: Boxes, after: Boxes, area_scale: float = 1.0) -> NDArray[np.bool_]:
        """Return a keep-mask over boxes, given them before and after (clipped) the transform."""
        width_before, height_before = _sides(before)
        width, height = _sides(after)
        area_ratio = width * height / (width_before * height_before * area_scale + _EPS)
        aspect = np.maximum(width / (height + _EPS), height / (width + _EPS))
        keep: NDArray[np.bool_] = (
            (width >= self.min_size)
            & (height >= self.min_size)
            & (area_ratio >= self.min_area_ratio)
            & (aspect <= self.max_aspect_ratio)
        )
        return keep


def _sides(boxes: Boxes) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def transform_boxes(boxes: Boxes, matrix: Matrix) -> Boxes:
    """Map boxes through a 2x3 affine matrix by their 4 corners; return the enclosing boxes.

    Example:
        >>> shift = np.array([[1.0, 0, 5], [0, 1, -2]])
        >>> transform_boxes(np.array([[0, 2, 4, 6]], np.float32), shift).tolist()
        [[5.0, 0.0, 9.0, 4.0]]
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    x1, y1, x2, y2 = (boxes[:, k].astype(np.float64) for k in range(4))
    corners_x = np.stack([x1, x2, x2, x1], axis=1)
    corners_y = np.stack([y1, y1, y2, y2], axis=1)
    new_x = matrix[0, 0] * corners_x + matrix[0, 1] * corners_y + matrix[0, 2]
    new_y = matrix[1, 0] * corners_x + matrix[1, 1] * corners_y + matrix[1, 2]
    enclosing = np.stack([new_x.min(1), new_y.min(1), new_x.max(1), new_y.max(1)], axis=1)
    return np.asarray(enclosing, dtype=np.float32)


def clip_boxes(boxes: Boxes, region: tuple[float, float, float, float]) -> Boxes:
    """Clip boxes to ``region = (x_min, y_min, x_max, y_max)``.

    Example:
        >>> clip_boxes(np.array([[-3, 2, 12, 5]], np.float32), (0, 0, 10, 10)).tolist()
        [[0.0, 2.0, 10.0, 5.0]]
    """
    x_min, y_min, x_max, y_max = region
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(boxes[:, [0, 2]], x_min, x_max)
    clipped[:, [1, 3]] = np.clip(boxes[:, [1, 3]], y_min, y_max)
    return clipped


def clip_and_filter(
    boxes: Boxes,
    labels: Labels,
    region: tuple[float, float, float, float],
    box_filter: BoxFilter,
    *,
    before: Boxes | None = None,
    area_scale: float = 1.0,
) -> tuple[Boxes, Labels]:
    """Clip boxes to a region and drop those ``box_filter`` rejects.

    Args:
        boxes: boxes already in the region's coordinates, before clipping.
        labels: their labels.
        region: ``(x_min, y_min, x_max, y_max)`` to clip to.
        box_filter: the candidate filter.
        before: the boxes before the transform, for the area ratio (default: ``boxes``).
        area_scale: the transform's area gain from ``before`` to ``boxes``.

    Returns:
        The kept, clipped boxes and their labels.

    Example:
        >>> b, l = clip_and_filter(np.array([[8, 0, 18, 4]], np.float32), np.array([1]),
        ...                        (0, 0, 10, 10), BoxFilter())
        >>> b.tolist(), l.tolist()
        ([[8.0, 0.0, 10.0, 4.0]], [1])
    """
    clipped = clip_boxes(boxes, region)
    keep = box_filter(boxes if before is None else before, clipped, area_scale)
    return clipped[keep], labels[keep]


def check_probability(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``0 <= value <= 1``."""
    check_range(name, value, 0.0, 1.0)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ConfigError(name, f"{value} is outside [{low}, {high}]", "choose a value in range")


def as_float_image(values: ArrayLike) -> FloatImage:
    """Return ``values`` as a contiguous float32 array (no copy when already one)."""
    return np.ascontiguousarray(values, dtype=np.float32)

"""Box-aware geometric transforms: one combined affine warp, horizontal flip, resize, crop.

All image work stays in float32 (16-bit sources keep their precision). Matrices map continuous
pixel coordinates (pixel ``j`` spans ``[j, j + 1)``); :func:`apply_affine` converts them to
OpenCV's pixel-centre convention, so boxes and pixels move together exactly.

Example:
    >>> import numpy as np
    >>> s = Sample(np.zeros((64, 64), np.float32), np.array([[8, 8, 24, 40]]), np.array([0]))
    >>> out = RandomAffine(degrees=10, translate=0.1, scale=0.2)(s, np.random.default_rng(0))
    >>> out.image.shape, out.image.dtype
    ((64, 64), dtype('float32'))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from insightray.imaging.transforms import letterbox as letterbox_image
from insightray.training.augment.sample import (
    BoxFilter,
    FloatImage,
    Matrix,
    Sample,
    as_float_image,
    check_probability,
    check_range,
    clip_and_filter,
    transform_boxes,
)

Shape = tuple[int, int]
"""``(height, width)`` in pixels."""

_CV_CHANNEL_LIMIT = 4


def affine_matrix(
    input_shape: Shape,
    output_shape: Shape,
    *,
    angle: float = 0.0,
    scale: float = 1.0,
    shear: tuple[float, float] = (0.0, 0.0),
    translation: tuple[float, float] = (0.0, 0.0),
) -> Matrix:
    """Build a 2x3 matrix: rotate, scale and shear about the input centre, then translate.

    With no arguments but the shapes, the input centre maps onto the output centre (a centred
    crop or pad). Angles are in degrees, positive is counter-clockwise on screen.

    Args:
        input_shape: ``(height, width)`` of the source image.
        output_shape: ``(height, width)`` of the result.
        angle: rotation in degrees.
        scale: isotropic zoom factor.
        shear: ``(x, y)`` shear angles in degrees.
        translation: ``(dx, dy)`` extra shift of the centre, in output pixels.

    Returns:
        A float64 ``(2, 3)`` matrix acting on continuous pixel coordinates.

    Example:
        >>> affine_matrix((10, 10), (10, 10), translation=(3, -2)).tolist()
        [[1.0, 0.0, 3.0], [0.0, 1.0, -2.0]]
    """
    radians = math.radians(angle)
    cos, sin = math.cos(radians) * scale, math.sin(radians) * scale
    rotation = np.array([[cos, sin], [-sin, cos]])
    shear_x, shear_y = (math.tan(math.radians(a)) for a in shear)
    linear = np.array([[1.0, shear_x], [shear_y, 1.0]]) @ rotation
    centre_in = np.array([input_shape[1] / 2.0, input_shape[0] / 2.0])
    centre_out = np.array([output_shape[1] / 2.0, output_shape[0] / 2.0])
    offset = centre_out + np.asarray(translation, dtype=np.float64) - linear @ centre_in
    return np.concatenate([linear, offset[:, None]], axis=1)


def warp_image(
    image: FloatImage,
    matrix: Matrix,
    output_shape: Shape,
    *,
    border_value: float = 0.0,
    interpolation: int = cv2.INTER_LINEAR,
) -> FloatImage:
    """Warp a float32 image with a matrix on continuous coordinates (see :func:`affine_matrix`).

    Example:
        >>> img = np.arange(16, dtype=np.float32).reshape(4, 4)
        >>> flip = np.array([[-1.0, 0, 4], [0, 1, 0]])
        >>> bool((warp_image(img, flip, (4, 4)) == img[:, ::-1]).all())
        True
    """
    # OpenCV samples pixel centres at integer coordinates: conjugate by a half-pixel shift.
    cv_matrix = matrix.copy()
    cv_matrix[:, 2] = matrix[:, :2] @ np.array([0.5, 0.5]) + matrix[:, 2] - 0.5
    size = (output_shape[1], output_shape[0])
    if image.ndim == 3 and image.shape[2] > _CV_CHANNEL_LIMIT:
        chunks = (
            image[..., k : k + _CV_CHANNEL_LIMIT]
            for k in range(0, image.shape[2], _CV_CHANNEL_LIMIT)
        )
        parts = [
            warp_image(
                c, matrix, output_shape, border_value=border_value, interpolation=interpolation
            )
            for c in chunks
        ]
        return as_float_image(np.concatenate(parts, axis=2))
    warped = cv2.warpAffine(
        np.ascontiguousarray(image),
        cv_matrix,
        size,
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value,) * 4,
    )
    return as_float_image(warped).reshape(output_shape + image.shape[2:])


def apply_affine(
    sample: Sample,
    matrix: Matrix,
    output_shape: Shape,
    *,
    border_value: float = 0.0,
    box_filter: BoxFilter | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> Sample:
    """Warp a sample: image by ``cv2.warpAffine``, boxes by their 4 corners, then clip and filter.

    Args:
        sample: the input.
        matrix: 2x3 matrix on continuous pixel coordinates (see :func:`affine_matrix`).
        output_shape: ``(height, width)`` of the result.
        border_value: fill for pixels mapped from outside the input.
        box_filter: candidate filter (default :class:`BoxFilter()`); its area test uses
            ``|det A|`` as the expected area gain.
        interpolation: an OpenCV interpolation flag.

    Returns:
        The warped sample.

    Example:
        >>> s = Sample(np.zeros((10, 10), np.float32), np.array([[0, 0, 4, 4]]), np.array([1]))
        >>> m = affine_matrix((10, 10), (10, 10), translation=(2, 3))
        >>> apply_affine(s, m, (10, 10)).boxes.tolist()
        [[2.0, 3.0, 6.0, 7.0]]
    """
    image = warp_image(
        sample.image, matrix, output_shape, border_value=border_value, interpolation=interpolation
    )
    area_scale = abs(float(np.linalg.det(matrix[:, :2])))
    region = (0.0, 0.0, float(output_shape[1]), float(output_shape[0]))
    boxes, labels = clip_and_filter(
        transform_boxes(sample.boxes, matrix),
        sample.labels,
        region,
        box_filter or BoxFilter(),
        before=sample.boxes,
        area_scale=area_scale,
    )
    return Sample(image, boxes, labels)


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation, zoom, shear and translation in one combined warp (box-aware).

    Args:
        degrees: rotation drawn from ``U(-degrees, degrees)``.
        translate: shift drawn from ``U(-translate, translate)`` times the output size.
        scale: zoom drawn from ``U(1 - scale, 1 + scale)``.
        shear: x and y shear angles drawn from ``U(-shear, shear)`` degrees.
        border_value: fill for uncovered pixels (``0.0`` is black, as air on an X-ray).
        p: probability of applying the transform at all.
        box_filter: which transformed boxes survive.

    Example:
        >>> s = Sample(np.zeros((32, 32), np.float32), np.array([[4, 4, 20, 20]]), np.array([2]))
        >>> RandomAffine(translate=0.0, scale=0.0)(s, np.random.default_rng(0)).boxes.tolist()
        [[4.0, 4.0, 20.0, 20.0]]
    """

    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    border_value: float = 0.0
    p: float = 1.0
    box_filter: BoxFilter = field(default_factory=BoxFilter)

    def __post_init__(self) -> None:
        check_range("RandomAffine.degrees", self.degrees, 0.0, 180.0)
        check_range("RandomAffine.translate", self.translate, 0.0, 1.0)
        check_range("RandomAffine.scale", self.scale, 0.0, 0.99)
        check_range("RandomAffine.shear", self.shear, 0.0, 45.0)
        check_probability("RandomAffine.p", self.p)

    def sample_matrix(
        self, input_shape: Shape, output_shape: Shape, rng: np.random.Generator
    ) -> Matrix:
        """Draw a matrix; when the transform is skipped, the centre-to-centre identity."""
        if rng.random() >= self.p:
            return affine_matrix(input_shape, output_shape)
        angle = float(rng.uniform(-self.degrees, self.degrees))
        zoom = float(rng.uniform(1.0 - self.scale, 1.0 + self.scale))
        shear_x, shear_y = (float(v) for v in rng.uniform(-self.shear, self.shear, size=2))
        shift_x, shift_y = (float(v) for v in rng.uniform(-self.translate, self.translate, size=2))
        return affine_matrix(
            input_shape,
            output_shape,
            angle=angle,
            scale=zoom,
            shear=(shear_x, shear_y),
            translation=(shift_x * output_shape[1], shift_y * output_shape[0]),
        )

    def warp_to(self, sample: Sample, output_shape: Shape, rng: np.random.Generator) -> Sample:
        """Apply a random affine whose result has ``output_shape`` (used by :class:`Mosaic`)."""
        matrix = self.sample_matrix((sample.height, sample.width), output_shape, rng)
        return apply_affine(
            sample, matrix, output_shape, border_value=self.border_value, box_filter=self.box_filter
        )

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        shape = (sample.height, sample.width)
        matrix = self.sample_matrix(shape, shape, rng)
        if np.allclose(matrix, affine_matrix(shape, shape)):
            return sample
        return apply_affine(
            sample, matrix, shape, border_value=self.border_value, box_filter=self.box_filter
        )


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror left-right with probability ``p``; boxes follow exactly.

    Note: a mirrored chest film puts the heart on the right. That is harmless for most
    findings, but set ``p=0`` if a class depends on side (labels are not swapped here).

    Example:
        >>> s = Sample(np.zeros((4, 10), np.float32), np.array([[1, 0, 3, 2]]), np.array([0]))
        >>> HorizontalFlip(p=1.0)(s, np.random.default_rng(0)).boxes.tolist()
        [[7.0, 0.0, 9.0, 2.0]]
    """

    p: float = 0.5

    def __post_init__(self) -> None:
        check_probability("HorizontalFlip.p", self.p)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        boxes = sample.boxes.copy()
        boxes[:, 0] = sample.width - sample.boxes[:, 2]
        boxes[:, 2] = sample.width - sample.boxes[:, 0]
        return Sample(as_float_image(sample.image[:, ::-1]), boxes, sample.labels.copy())


def resize_long_side(sample: Sample, long_side: int) -> Sample:
    """Resize keeping the aspect ratio so that the longer side is ``long_side`` pixels.

    Example:
        >>> s = Sample(np.zeros((50, 100), np.float32), np.array([[10, 10, 20, 20]]), np.array([0]))
        >>> r = resize_long_side(s, 200)
        >>> r.image.shape, r.boxes.tolist()
        ((100, 200), [[20.0, 20.0, 40.0, 40.0]])
    """
    ratio = long_side / max(sample.height, sample.width)
    width = max(1, round(sample.width * ratio))
    height = max(1, round(sample.height * ratio))
    if (height, width) == (sample.height, sample.width):
        return sample
    shrinking = ratio < 1.0
    resized = cv2.resize(
        sample.image,
        (width, height),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    image = as_float_image(resized).reshape((height, width, *sample.image.shape[2:]))
    factors = np.array([width / sample.width, height / sample.height] * 2, dtype=np.float32)
    return Sample(image, sample.boxes * factors, sample.labels.copy())


def letterbox(sample: Sample, size: int, border_value: float = 0.0) -> Sample:
    """Resize the longer side to ``size`` and pad, centred, to a ``size x size`` square.

    The same letterbox as inference (:func:`insightray.imaging.transforms.letterbox`), so
    training and serving see identical geometry.

    Example:
        >>> s = Sample(np.ones((50, 100), np.float32), np.array([[0, 0, 10, 10]]), np.array([0]))
        >>> lb = letterbox(s, 100)
        >>> lb.image.shape, lb.boxes.tolist()
        ((100, 100), [[0.0, 25.0, 10.0, 35.0]])
    """
    image, info = letterbox_image(sample.image, size, pad_value=border_value)
    return Sample(image, info.to_letterbox(sample.boxes), sample.labels.copy())


def crop(
    sample: Sample,
    window: tuple[int, int, int, int],
    box_filter: BoxFilter | None = None,
    border_value: float = 0.0,
) -> Sample:
    """Cut ``window = (x0, y0, width, height)`` out of a sample (padding where it overhangs).

    Example:
        >>> s = Sample(np.zeros((20, 20), np.float32), np.array([[5, 5, 15, 15]]), np.array([4]))
        >>> crop(s, (4, 4, 10, 10)).boxes.tolist()
        [[1.0, 1.0, 10.0, 10.0]]
    """
    x0, y0, width, height = window
    image = np.full((height, width, *sample.image.shape[2:]), border_value, dtype=np.float32)
    src_x1, src_y1 = max(x0, 0), max(y0, 0)
    src_x2, src_y2 = min(x0 + width, sample.width), min(y0 + height, sample.height)
    if src_x2 > src_x1 and src_y2 > src_y1:
        image[src_y1 - y0 : src_y2 - y0, src_x1 - x0 : src_x2 - x0] = sample.image[
            src_y1:src_y2, src_x1:src_x2
        ]
    shifted = sample.boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
    boxes, labels = clip_and_filter(
        shifted, sample.labels, (0.0, 0.0, float(width), float(height)), box_filter or BoxFilter()
    )
    return Sample(image, boxes, labels)

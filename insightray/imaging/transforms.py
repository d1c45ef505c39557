"""Preprocessing transforms: small typed callables on float32 images, composable with Compose.

Each transform takes a 2-D float32 array (values usually in ``[0, 1]``, as
:func:`~insightray.imaging.read_image` gives them) and returns a new float32 array; none
quantises to 8 bits. Geometry-changing resizes live in :func:`letterbox`, which also returns the
mapping needed to put boxes back on the original pixels.

Example:
    >>> pipeline = Compose([GaussianDenoise(sigma=1.0), Clahe(clip_limit=2.0)])
    >>> out = pipeline(np.random.default_rng(0).random((64, 64), dtype=np.float32))
    >>> out.shape, out.dtype
    ((64, 64), dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.imaging.types import Window
from insightray.imaging.windowing import apply_window, normalize_range

Array = NDArray[np.float32]
Transform = Callable[[Array], Array]


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    transforms: Sequence[Transform]

    def __call__(self, image: Array) -> Array:
        for transform in self.transforms:
            image = transform(image)
        return image


@dataclass(frozen=True)
class Windowing:
    """Map modality values (e.g. from ``read_image(..., output="modality")``) through a window.

    Args:
        center: Window centre in modality units.
        width: Window width in modality units.
        invert: Flip the result (for MONOCHROME1 sources) so bright means dense.

    Example:
        >>> Windowing(40, 400)(np.array([-160.0, 40.0, 240.0], dtype=np.float32)).round(2)
        array([0. , 0.5, 1. ], dtype=float32)
    """

    center: float
    width: float
    invert: bool = False

    def __call__(self, image: Array) -> Array:
        out = apply_window(image, Window(self.center, self.width, "LINEAR_EXACT"))
        return 1.0 - out if self.invert else out


@dataclass(frozen=True)
class NormalizeIntensity:
    """Scale the ``[lower, upper]`` percentiles of the image to ``[0, 1]`` and clip.

    With the defaults (0 and 100) this is min-max scaling; ``(0.5, 99.5)`` ignores burnt-in
    text and collimator edges.
    """

    lower_percentile: float = 0.0
    upper_percentile: float = 100.0

    def __post_init__(self) -> None:
        if not 0 <= self.lower_percentile < self.upper_percentile <= 100:
            raise ConfigError(
                "NormalizeIntensity",
                f"percentiles {self.lower_percentile}, {self.upper_percentile} are not ordered",
                "use 0 <= lower < upper <= 100",
            )

    def __call__(self, image: Array) -> Array:
        low, high = np.percentile(image, [self.lower_percentile, self.upper_percentile])
        return normalize_range(image, float(low), float(high))


@dataclass(frozen=True)
class Clahe:
    """Contrast-limited adaptive histogram equalisation at 12- to 16-bit precision.

    OpenCV's CLAHE takes 16-bit input but then counts 65,536 histogram bins, so on real tiles
    the usual clip limits collapse to one count per bin. Here the image is quantised to ``bins``
    levels spread evenly over the 16-bit range and the clip limit is rescaled, so ``clip_limit``
    means what it means in classic 8-bit CLAHE (a multiple of the mean bin height) while the
    output keeps tens of thousands of levels instead of 256.

    Args:
        clip_limit: Contrast limit as a multiple of the mean histogram bin height (2.0 mild,
            4.0 strong), as in OpenCV.
        tile_grid: Number of tiles as ``(rows, columns)``.
        bins: Histogram bins, a power of two from 256 to 65536 (4096 = 12-bit). Keep it
            below the pixels per tile, or every clip limit rounds to one count per bin.
    """

    clip_limit: float = 2.0
    tile_grid: tuple[int, int] = (8, 8)
    bins: int = 4096

    def __post_init__(self) -> None:
        power_of_two = self.bins & (self.bins - 1) == 0
        if (
            self.clip_limit <= 0
            or min(self.tile_grid) < 1
            or not (power_of_two and 256 <= self.bins <= 65536)
        ):
            raise ConfigError(
                "Clahe",
                f"clip limit {self.clip_limit}, tile grid {self.tile_grid}, bins {self.bins} "
                "is invalid",
                "use a positive clip limit, at least 1 x 1 tiles and a power of two from 256 "
                "to 65536 bins",
            )

    def __call__(self, image: Array) -> Array:
        step = 65536 // self.bins
        levels = np.rint(np.clip(image, 0.0, 1.0) * (self.bins - 1)).astype(np.uint16) * step
        # OpenCV clips at clipLimit * tile_area / 65536 counts; rescale to tile_area / bins.
        # It takes the grid as (width, height) tiles; ours is (rows, columns).
        clahe = cv2.createCLAHE(
            self.clip_limit * 65536 / self.bins, (self.tile_grid[1], self.tile_grid[0])
        )
        out = clahe.apply(np.ascontiguousarray(levels)).astype(np.float32) / np.float32(65535)
        return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class GaussianDenoise:
    """Gaussian smoothing with standard deviation ``sigma`` pixels (kernel of 6 sigma + 1)."""

    sigma: float = 1.0

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ConfigError(
                "GaussianDenoise", f"sigma {self.sigma} is not positive", "use a sigma above 0"
            )

    def __call__(self, image: Array) -> Array:
        size = 2 * int(np.ceil(3 * self.sigma)) + 1
        out = cv2.GaussianBlur(image.astype(np.float32, copy=False), (size, size), self.sigma)
        return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class ToChannels:
    """Turn a 2-D image into a ``(channels, H, W)`` array for a model (grayscale repeated)."""

    channels: int = 3

    def __call__(self, image: Array) -> Array:
        if image.ndim != 2:
            raise ConfigError(
                "ToChannels",
                f"expected a 2-D image, got shape {image.shape}",
                "apply it to a single grayscale image",
            )
        return np.ascontiguousarray(np.broadcast_to(image, (self.channels, *image.shape)))


@dataclass(frozen=True)
class LetterboxInfo:
    """How an image was letterboxed: ``letterboxed = original * scale + pad``, per axis.

    Attributes:
        scale: ``(x, y)`` resize factors actually applied (the rounded output size divided
            by the input size, so the mapping is exact).
        pad: ``(left, top)`` padding in letterboxed pixels.
        original_size: ``(rows, columns)`` before the resize.
        size: ``(rows, columns)`` after padding.
    """

    scale: tuple[float, float]
    pad: tuple[int, int]
    original_size: tuple[int, int]
    size: tuple[int, int]

    def to_original(self, boxes: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        """Map ``(N, 4)`` x1, y1, x2, y2 boxes from letterboxed to original pixels, clipped."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad[0]) / self.scale[0]
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad[1]) / self.scale[1]
        rows, cols = self.original_size
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, cols)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, rows)
        return out

    def to_letterbox(self, boxes: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        """Map ``(N, 4)`` x1, y1, x2, y2 boxes from original to letterboxed pixels."""
        out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale[0] + self.pad[0]
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale[1] + self.pad[1]
        return out


def letterbox(
    image: Array, size: int | tuple[int, int], pad_value: float = 0.0
) -> tuple[Array, LetterboxInfo]:
    """Resize keeping the aspect ratio, then pad evenly to ``size`` (int or ``(rows, cols)``).

    Example:
        >>> out, info = letterbox(np.zeros((100, 200), np.float32), 64)
        >>> out.shape, info.scale, info.pad
        ((64, 64), (0.32, 0.32), (0, 16))
    """
    rows_out, cols_out = (size, size) if isinstance(size, int) else size
    rows, cols = image.shape[:2]
    scale = min(rows_out / rows, cols_out / cols)
    new_rows, new_cols = max(round(rows * scale), 1), max(round(cols * scale), 1)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(
        image.astype(np.float32, copy=False), (new_cols, new_rows), interpolation=interpolation
    )
    top, left = (rows_out - new_rows) // 2, (cols_out - new_cols) // 2
    out = cv2.copyMakeBorder(
        resized,
        top,
        rows_out - new_rows - top,
        left,
        cols_out - new_cols - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value,) * 4,
    )
    info = LetterboxInfo(
        (new_cols / cols, new_rows / rows), (left, top), (rows, cols), (rows_out, cols_out)
    )
    return np.asarray(out, dtype=np.float32), info

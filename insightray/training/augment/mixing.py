"""Multi-sample augmentations: 4-image mosaic and MixUp.

Interface: both are pure functions of the samples they are given. :class:`Mosaic` takes a
sequence of exactly 4 samples and :class:`MixUp` two samples; choosing *which* samples (the
dataset lookup) is the job of :class:`~insightray.training.augment.pipeline.DetectionAugmentation`,
which draws the partner indices from the same ``numpy.random.Generator``.

Example:
    >>> import numpy as np
    >>> tiles = [Sample(np.full((40, 60), k / 4, np.float32), [[5, 5, 30, 30]], [k])
    ...          for k in range(4)]
    >>> out = Mosaic(output_size=64)(tiles, np.random.default_rng(0))
    >>> out.image.shape
    (64, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from insightray.training.augment.geometric import RandomAffine, crop, resize_long_side
from insightray.training.augment.sample import (
    Boxes,
    BoxFilter,
    Labels,
    Sample,
    as_float_image,
    check_range,
    clip_and_filter,
)

_TILES = 4


@dataclass(frozen=True)
class Mosaic:
    """Paste 4 samples around a random centre of a ``2s x 2s`` canvas, then cut ``s x s``.

    Each tile is resized (aspect kept) so its longer side is ``s * U(scale_range)``; tile 0 goes
    up-left of the centre, 1 up-right, 2 down-left, 3 down-right. The centre is drawn from
    ``U(s/2, 3s/2)`` on both axes. Boxes are shifted, clipped to the visible part of their tile
    and filtered. Finally ``affine`` (if given) warps the canvas to ``s x s`` about its centre;
    otherwise the central ``s x s`` window is cropped.

    Args:
        output_size: ``s``, the side of the square result in pixels.
        scale_range: per-tile zoom range; ``(1.0, 1.0)`` turns tile jitter off.
        affine: optional random affine applied to the whole canvas.
        border_value: fill for canvas areas no tile covers.
        box_filter: which clipped boxes survive.

    Example:
        >>> t = Sample(np.zeros((32, 32), np.float32), [[0, 0, 32, 32]], [1])
        >>> out = Mosaic(32, scale_range=(1.0, 1.0))([t] * 4, np.random.default_rng(3))
        >>> set(out.labels.tolist()) <= {1}
        True
    """

    output_size: int = 640
    scale_range: tuple[float, float] = (0.8, 1.2)
    affine: RandomAffine | None = None
    border_value: float = 0.0
    box_filter: BoxFilter = field(default_factory=BoxFilter)

    def __post_init__(self) -> None:
        check_range("Mosaic.output_size", self.output_size, 2, 1 << 15)
        low, high = self.scale_range
        check_range("Mosaic.scale_range[0]", low, 0.05, high)
        check_range("Mosaic.scale_range[1]", high, low, 4.0)

    def __call__(self, samples: Sequence[Sample], rng: np.random.Generator) -> Sample:
        """Build one mosaic from exactly 4 samples with the same channel layout."""
        if len(samples) != _TILES:
            raise ValueError(f"Mosaic needs exactly {_TILES} samples, got {len(samples)}")
        channels = {s.image.shape[2:] for s in samples}
        if len(channels) != 1:
            raise ValueError(f"Mosaic samples differ in channel layout: {sorted(channels)}")
        canvas = self._canvas(samples, rng)
        size = self.output_size
        if self.affine is not None:
            return self.affine.warp_to(canvas, (size, size), rng)
        offset = size // 2
        return crop(canvas, (offset, offset, size, size), self.box_filter, self.border_value)

    def _canvas(self, samples: Sequence[Sample], rng: np.random.Generator) -> Sample:
        side = 2 * self.output_size
        canvas = np.full(
            (side, side, *samples[0].image.shape[2:]), self.border_value, dtype=np.float32
        )
        centre_x, centre_y = (
            int(v) for v in rng.integers(self.output_size // 2, side - self.output_size // 2, 2)
        )
        all_boxes: list[Boxes] = []
        all_labels: list[Labels] = []
        for position, sample in enumerate(samples):
            long_side = max(1, round(self.output_size * rng.uniform(*self.scale_range)))
            tile = resize_long_side(sample, long_side)
            left = centre_x - tile.width if position in (0, 2) else centre_x
            top = centre_y - tile.height if position in (0, 1) else centre_y
            x1, y1 = max(left, 0), max(top, 0)
            x2, y2 = min(left + tile.width, side), min(top + tile.height, side)
            canvas[y1:y2, x1:x2] = tile.image[y1 - top : y2 - top, x1 - left : x2 - left]
            shifted = tile.boxes + np.array([left, top, left, top], dtype=np.float32)
            region = (float(x1), float(y1), float(x2), float(y2))
            boxes, labels = clip_and_filter(shifted, tile.labels, region, self.box_filter)
            all_boxes.append(boxes)
            all_labels.append(labels)
        return Sample(canvas, np.concatenate(all_boxes), np.concatenate(all_labels))


@dataclass(frozen=True)
class MixUp:
    """Blend two same-size samples: ``lam * a + (1 - lam) * b`` with ``lam ~ Beta(alpha, alpha)``.

    The boxes and labels of both samples are concatenated (first, then second). A large
    ``alpha`` (32, the default) keeps ``lam`` near 0.5.

    Example:
        >>> a = Sample(np.zeros((4, 4), np.float32), [[0, 0, 2, 2]], [0])
        >>> b = Sample(np.ones((4, 4), np.float32), [[1, 1, 3, 3]], [1])
        >>> out = MixUp()(a, b, np.random.default_rng(0))
        >>> len(out), out.labels.tolist()
        (2, [0, 1])
    """

    alpha: float = 32.0

    def __post_init__(self) -> None:
        check_range("MixUp.alpha", self.alpha, 1e-3, 1e6)

    def __call__(self, first: Sample, second: Sample, rng: np.random.Generator) -> Sample:
        """Blend ``first`` and ``second``; raise ``ValueError`` if their images differ in shape."""
        if first.image.shape != second.image.shape:
            raise ValueError(
                f"MixUp needs same-size images, got {first.image.shape} and {second.image.shape}"
            )
        weight = np.float32(rng.beta(self.alpha, self.alpha))
        image = first.image * weight + second.image * (np.float32(1.0) - weight)
        return Sample(
            as_float_image(image),
            np.concatenate([first.boxes, second.boxes]),
            np.concatenate([first.labels, second.labels]),
        )

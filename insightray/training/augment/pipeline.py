"""Configuration and assembly of the training augmentation pipeline.

:func:`build_augmentations` turns an :class:`AugmentConfig` into a
:class:`DetectionAugmentation`, called as ``augment(source, index, rng)``. Per call it:

1. with probability ``mosaic``: loads ``index`` plus 3 random indices and builds a mosaic
   (with the random affine inside); otherwise letterboxes ``source[index]`` to
   ``output_size`` and applies the random affine;
2. with probability ``mixup``: builds a second image the same way and blends the two;
3. applies the horizontal flip and the intensity jitter.

Every result is ``output_size x output_size``, float32, values in [0, 1].

Example:
    >>> import numpy as np
    >>> data = [Sample(np.full((50, 40), 0.5, np.float32), [[5, 5, 25, 30]], [k % 3])
    ...         for k in range(6)]
    >>> augment = build_augmentations(AugmentConfig(output_size=64))
    >>> augment(data, 0, np.random.default_rng(0)).image.shape
    (64, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insightray.training.augment.geometric import HorizontalFlip, RandomAffine, letterbox
from insightray.training.augment.intensity import IntensityJitter
from insightray.training.augment.mixing import MixUp, Mosaic
from insightray.training.augment.sample import (
    BoxFilter,
    Sample,
    SampleSource,
    Transform,
    check_probability,
    check_range,
)


@dataclass(frozen=True)
class Compose:
    """Apply single-sample transforms in order, sharing one generator.

    Example:
        >>> s = Sample(np.zeros((4, 8), np.float32), [[0, 0, 2, 2]], [0])
        >>> flip_twice = Compose([HorizontalFlip(1.0), HorizontalFlip(1.0)])
        >>> flip_twice(s, np.random.default_rng(0)).boxes.tolist()
        [[0.0, 0.0, 2.0, 2.0]]
    """

    transforms: Sequence[Transform]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


@dataclass(frozen=True)
class AugmentConfig:
    """Every probability and range of the detection augmentation (defaults: YOLOv5 scratch-low).

    Probabilities (0 switches a stage off): ``mosaic``, ``mixup``, ``affine``, ``flip``,
    ``intensity``. Ranges are documented on :class:`RandomAffine`, :class:`IntensityJitter`,
    :class:`Mosaic` and :class:`BoxFilter`.

    As in scratch-low, mosaic tiles keep their size, uncovered pixels are grey (114/255) and
    every image gets an intensity change (its value gain of 0.6-1.4 becomes contrast and
    brightness here, plus gamma). BENCHMARKS.md measures these against per-tile jitter, black
    fill and a milder jitter on half the images.

    Example:
        >>> AugmentConfig(mixup=0.1).mixup
        0.1
    """

    output_size: int = 640
    mosaic: float = 1.0
    mosaic_scale: tuple[float, float] = (1.0, 1.0)
    mixup: float = 0.0
    mixup_alpha: float = 32.0
    affine: float = 1.0
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    flip: float = 0.5
    intensity: float = 1.0
    brightness: float = 0.2
    contrast: float = 0.4
    gamma: float = 0.2
    border_value: float = 0.447
    min_area_ratio: float = 0.1
    min_box_size: float = 2.0
    max_aspect_ratio: float = 20.0

    def __post_init__(self) -> None:
        for name in ("mosaic", "mixup", "affine", "flip", "intensity"):
            check_probability(f"augment.{name}", getattr(self, name))
        check_range("augment.output_size", self.output_size, 2, 1 << 15)
        check_range("augment.border_value", self.border_value, 0.0, 1.0)


@dataclass(frozen=True)
class DetectionAugmentation:
    """The assembled training pipeline; see the module docstring for the order of stages.

    Build it with :func:`build_augmentations` rather than by hand.
    """

    output_size: int
    mosaic: Mosaic
    mosaic_p: float
    mixup: MixUp
    mixup_p: float
    affine: RandomAffine
    photometric: Compose
    border_value: float = 0.0

    def __call__(self, source: SampleSource, index: int, rng: np.random.Generator) -> Sample:
        """Augment ``source[index]``; partners for mosaic/mixup are drawn from ``source``.

        Args:
            source: a ``list[Sample]`` or any map-style dataset of samples.
            index: the sample to augment.
            rng: the only source of randomness (seed it for reproducible output).

        Returns:
            An ``output_size x output_size`` float32 sample.
        """
        sample = self._geometric(source, index, rng)
        if rng.random() < self.mixup_p:
            partner = int(rng.integers(len(source)))
            sample = self.mixup(sample, self._geometric(source, partner, rng), rng)
        return self.photometric(sample, rng)

    def _geometric(self, source: SampleSource, index: int, rng: np.random.Generator) -> Sample:
        if rng.random() < self.mosaic_p:
            partners = (int(i) for i in rng.integers(len(source), size=3))
            return self.mosaic([source[index], *(source[i] for i in partners)], rng)
        boxed = letterbox(source[index], self.output_size, self.border_value)
        return self.affine(boxed, rng)


def build_augmentations(config: AugmentConfig) -> DetectionAugmentation:
    """Assemble the training pipeline from a config.

    Args:
        config: probabilities and ranges; ``AugmentConfig()`` gives the defaults.

    Returns:
        A callable ``augment(source, index, rng) -> Sample``.

    Example:
        >>> augment = build_augmentations(AugmentConfig(mosaic=0.0, flip=0.0, intensity=0.0))
        >>> augment.mosaic_p, augment.photometric.transforms[0].p
        (0.0, 0.0)
    """
    box_filter = BoxFilter(config.min_area_ratio, config.min_box_size, config.max_aspect_ratio)
    affine = RandomAffine(
        degrees=config.degrees,
        translate=config.translate,
        scale=config.scale,
        shear=config.shear,
        border_value=config.border_value,
        p=config.affine,
        box_filter=box_filter,
    )
    mosaic = Mosaic(
        output_size=config.output_size,
        scale_range=config.mosaic_scale,
        affine=affine,
        border_value=config.border_value,
        box_filter=box_filter,
    )
    photometric = Compose(
        [
            HorizontalFlip(config.flip),
            IntensityJitter(config.brightness, config.contrast, config.gamma, config.intensity),
        ]
    )
    return DetectionAugmentation(
        output_size=config.output_size,
        mosaic=mosaic,
        mosaic_p=config.mosaic,
        mixup=MixUp(config.mixup_alpha),
        mixup_p=config.mixup,
        affine=affine,
        photometric=photometric,
        border_value=config.border_value,
    )

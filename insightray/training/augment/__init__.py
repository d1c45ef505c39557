"""Box-aware detection augmentation for chest X-rays (float32 throughout, 16-bit safe).

Single-sample transforms are callables ``(sample, rng) -> sample``: :class:`RandomAffine`,
:class:`HorizontalFlip`, :class:`IntensityJitter`, chained by :class:`Compose`. The
multi-sample :class:`Mosaic` (4 samples) and :class:`MixUp` (2 samples) take the samples
themselves; :func:`build_augmentations` wires everything from an :class:`AugmentConfig` into
``augment(source, index, rng)``. All randomness comes from the ``numpy.random.Generator``
passed in, so a seed reproduces the output. :func:`inverse_frequency_image_weights` gives
per-image weights for a ``WeightedRandomSampler``.

Example:
    >>> import numpy as np
    >>> data = [Sample(np.random.default_rng(k).random((80, 64), np.float32),
    ...                [[10, 10, 40, 50]], [k % 2]) for k in range(4)]
    >>> augment = build_augmentations(AugmentConfig(output_size=64, mixup=0.5))
    >>> out = augment(data, 1, np.random.default_rng(7))
    >>> out.image.shape, out.image.dtype
    ((64, 64), dtype('float32'))
"""

from __future__ import annotations

from insightray.training.augment.geometric import (
    HorizontalFlip,
    RandomAffine,
    affine_matrix,
    apply_affine,
    crop,
    letterbox,
    resize_long_side,
    warp_image,
)
from insightray.training.augment.intensity import IntensityJitter
from insightray.training.augment.mixing import MixUp, Mosaic
from insightray.training.augment.pipeline import (
    AugmentConfig,
    Compose,
    DetectionAugmentation,
    build_augmentations,
)
from insightray.training.augment.sample import (
    BoxFilter,
    Sample,
    SampleSource,
    Transform,
    clip_boxes,
    transform_boxes,
)
from insightray.training.augment.sampling import inverse_frequency_image_weights

__all__ = [
    "AugmentConfig",
    "BoxFilter",
    "Compose",
    "DetectionAugmentation",
    "HorizontalFlip",
    "IntensityJitter",
    "MixUp",
    "Mosaic",
    "RandomAffine",
    "Sample",
    "SampleSource",
    "Transform",
    "affine_matrix",
    "apply_affine",
    "build_augmentations",
    "clip_boxes",
    "crop",
    "inverse_frequency_image_weights",
    "letterbox",
    "resize_long_side",
    "transform_boxes",
    "warp_image",
]

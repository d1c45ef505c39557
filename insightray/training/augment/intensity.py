"""Grey-level jitter for radiographs: gamma, contrast and brightness, in float32.

There is deliberately no hue or saturation jitter: an X-ray has one physical channel (a
3-channel copy of it is jittered identically in every channel). Boxes are untouched.

Example:
    >>> import numpy as np
    >>> s = Sample(np.full((4, 4), 0.5, np.float32), np.empty((0, 4)), np.empty(0))
    >>> out = IntensityJitter(brightness=0.2, p=1.0)(s, np.random.default_rng(0))
    >>> bool(0.0 <= out.image.min() and out.image.max() <= 1.0)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from insightray.training.augment.sample import (
    Sample,
    as_float_image,
    check_probability,
    check_range,
)


@dataclass(frozen=True)
class IntensityJitter:
    """Random gamma, then contrast about the mean, then brightness shift; clipped to [0, 1].

    Args:
        brightness: additive shift drawn from ``U(-brightness, brightness)``.
        contrast: gain about the image mean drawn from ``U(1 - contrast, 1 + contrast)``.
        gamma: exponent drawn log-uniformly from ``[1 / (1 + gamma), 1 + gamma]``.
        p: probability of applying the jitter.

    Example:
        >>> s = Sample(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), [], [])
        >>> out = IntensityJitter(contrast=0.5, p=1.0)(s, np.random.default_rng(1))
        >>> out.image.dtype
        dtype('float32')
    """

    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.2
    p: float = 0.5

    def __post_init__(self) -> None:
        check_range("IntensityJitter.brightness", self.brightness, 0.0, 1.0)
        check_range("IntensityJitter.contrast", self.contrast, 0.0, 1.0)
        check_range("IntensityJitter.gamma", self.gamma, 0.0, 10.0)
        check_probability("IntensityJitter.p", self.p)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        log_gamma = math.log1p(self.gamma)
        exponent = np.float32(math.exp(rng.uniform(-log_gamma, log_gamma)))
        gain = np.float32(rng.uniform(1.0 - self.contrast, 1.0 + self.contrast))
        shift = np.float32(rng.uniform(-self.brightness, self.brightness))
        image = np.power(np.clip(sample.image, 0.0, 1.0), exponent)
        mean = np.float32(image.mean())
        image = (image - mean) * gain + mean + shift
        return Sample(as_float_image(np.clip(image, 0.0, 1.0)), sample.boxes, sample.labels)

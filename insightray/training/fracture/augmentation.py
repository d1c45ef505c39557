"""Training augmentation for bone radiographs (float32 ``[0, 1]`` images, seeded).

One call draws, in order: an affine warp (rotation within +-15 degrees, translation within
+-10 % of each side, scale 0.9-1.1, about the image centre), a horizontal flip (p = 0.5), an
elastic deformation (a smooth random displacement field, Simard et al. 2003), brightness
(x U(0.8, 1.2)), gamma (U(0.8, 1.2)) and Gaussian noise with sigma ~ U(0, 0.1). All randomness
comes from the ``numpy.random.Generator`` passed in, so a seed reproduces the output.

The affine warp reuses the detection pipeline's :func:`~insightray.training.augment.
affine_matrix`; the elastic field is written here with OpenCV (a Gaussian-smoothed
displacement and ``cv2.remap``) because the project has no augmentation library dependency.

Example:
    >>> import numpy as np
    >>> augment = FractureAugmentation(AugmentSettings())
    >>> image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    >>> out = augment(image, np.random.default_rng(1))
    >>> out.shape, out.dtype, bool(0 <= out.min() and out.max() <= 1)
    ((64, 64), dtype('float32'), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.training.augment import affine_matrix, warp_image

__all__ = ["AugmentSettings", "FractureAugmentation"]

Array = NDArray[np.float32]


@dataclass(frozen=True)
class AugmentSettings:
    """Augmentation ranges; set a range or probability to 0 to switch that part off.

    Attributes:
        enabled: Augment at all.
        rotation: Maximum rotation in degrees (both directions).
        translation: Maximum shift as a fraction of each side.
        scale: ``(low, high)`` zoom factors.
        flip: Probability of a horizontal flip.
        elastic: Probability of an elastic deformation.
        elastic_alpha: Displacement strength, as a fraction of the image side.
        elastic_sigma: Smoothness of the displacement field, as a fraction of the side.
        brightness: Maximum relative brightness change.
        gamma: ``(low, high)`` gamma range.
        noise: Maximum standard deviation of the Gaussian noise.
    """

    enabled: bool = True
    rotation: float = 15.0
    translation: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    flip: float = 0.5
    elastic: float = 0.3
    elastic_alpha: float = 0.03
    elastic_sigma: float = 0.04
    brightness: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.2)
    noise: float = 0.1

    def __post_init__(self) -> None:
        for name in ("flip", "elastic"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment {name}", "is a probability", "use a value in [0, 1]")
        for name in ("scale", "gamma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ConfigError(f"augment {name}", f"({low}, {high})", "use 0 < low <= high")
        for name in ("rotation", "translation", "elastic_alpha", "elastic_sigma", "noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment {name}", "is negative", "use a value >= 0")
        if not 0 <= self.brightness < 1:
            raise ConfigError("augment brightness", "is outside [0, 1)", "use e.g. 0.2")


class FractureAugmentation:
    """Callable ``(image, rng) -> image`` applying :class:`AugmentSettings`."""

    def __init__(self, settings: AugmentSettings) -> None:
        self.settings = settings

    def __call__(self, image: Array, rng: np.random.Generator) -> Array:
        settings = self.settings
        if not settings.enabled:
            return image
        out = self._affine(image, rng)
        if rng.random() < settings.flip:
            out = np.ascontiguousarray(out[:, ::-1])
        if settings.elastic_alpha > 0 and rng.random() < settings.elastic:
            out = self._elastic(out, rng)
        out = out * rng.uniform(1 - settings.brightness, 1 + settings.brightness)
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(*settings.gamma)
        sigma = rng.uniform(0, settings.noise)
        if sigma > 0:
            out = out + rng.normal(0.0, sigma, out.shape)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def _affine(self, image: Array, rng: np.random.Generator) -> Array:
        settings = self.settings
        height, width = image.shape
        shift = settings.translation
        matrix = affine_matrix(
            (height, width),
            (height, width),
            angle=rng.uniform(-settings.rotation, settings.rotation),
            scale=rng.uniform(*settings.scale),
            translation=(rng.uniform(-shift, shift) * width, rng.uniform(-shift, shift) * height),
        )
        return warp_image(image, matrix, (height, width))

    def _elastic(self, image: Array, rng: np.random.Generator) -> Array:
        height, width = image.shape
        side = max(height, width)
        sigma = max(self.settings.elastic_sigma * side, 1.0)
        alpha = self.settings.elastic_alpha * side
        fields = []
        for _ in range(2):
            noise = rng.uniform(-1, 1, (height, width)).astype(np.float32)
            smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
            peak = float(np.abs(smooth).max()) or 1.0
            fields.append(smooth / peak * alpha)
        grid_x, grid_y = np.meshgrid(
            np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        )
        warped = cv2.remap(
            image,
            grid_x + fields[0],
            grid_y + fields[1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0,),
        )
        return np.asarray(warped, dtype=np.float32)

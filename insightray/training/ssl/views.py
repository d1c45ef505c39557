"""Two random views of one radiograph, for contrastive and self-distillation pre-training.

Grayscale radiographs need other views than natural photographs: no hue or saturation jitter
(there is no colour) and no solarisation; instead random resized crops (scale 0.35-1), small
rotations (+-10 degrees: a radiograph has an upright orientation), a horizontal flip,
a random intensity window (a radiologist's window/level: the view keeps the values between
two random percentiles, stretched to [0, 1]), gamma, and CLAHE with probability 0.5.
Written with OpenCV on NumPy arrays; each call draws from the generator it is given.

Example:
    >>> views = RadiographViews(size=32)
    >>> a, b = views(np.random.default_rng(0).random((48, 48), dtype=np.float32),
    ...              np.random.default_rng(1))
    >>> a.shape, b.shape, float(a.min()) >= 0.0, float(a.max()) <= 1.0
    ((32, 32), (32, 32), True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["RadiographViews"]

FloatImage = NDArray[np.float32]


@dataclass(frozen=True)
class RadiographViews:
    """Random radiograph views of side ``size``.

    Attributes:
        size: Output side in pixels.
        min_scale: Smallest crop area as a share of the image.
        max_rotation: Largest rotation, degrees.
        clahe_probability: Chance of CLAHE on a view.
        window_probability: Chance of a random intensity window on a view.
    """

    size: int = 96
    min_scale: float = 0.35
    max_rotation: float = 10.0
    clahe_probability: float = 0.5
    window_probability: float = 0.8

    def view(self, image: FloatImage, rng: np.random.Generator) -> FloatImage:
        """One random view of a ``[0, 1]`` 2-D image."""
        rows, cols = image.shape
        area = rows * cols * rng.uniform(self.min_scale, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        height = int(min(rows, round(np.sqrt(area / aspect))))
        width = int(min(cols, round(np.sqrt(area * aspect))))
        top = int(rng.integers(0, rows - height + 1))
        left = int(rng.integers(0, cols - width + 1))
        crop = image[top : top + height, left : left + width]
        out = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA)
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        matrix = cv2.getRotationMatrix2D((self.size / 2, self.size / 2), angle, 1.0)
        out = cv2.warpAffine(out, matrix, (self.size, self.size), borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < self.window_probability:
            low, high = np.percentile(out, [rng.uniform(0, 20), rng.uniform(80, 100)])
            out = (out - low) / max(high - low, 1e-3)
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
        if rng.random() < self.clahe_probability:
            clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.0, 3.0)), tileGridSize=(4, 4))
            out = clahe.apply((out * 255).astype(np.uint8)).astype(np.float32) / 255.0
        return np.ascontiguousarray(out, dtype=np.float32)

    def __call__(
        self, image: FloatImage, rng: np.random.Generator
    ) -> tuple[FloatImage, FloatImage]:
        """Two independent views of ``image``."""
        return self.view(image, rng), self.view(image, rng)

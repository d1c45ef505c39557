"""Radiograph enhancement before classification: denoise, crop to the bone, CLAHE, bone edges.

:class:`RadiographEnhancement` holds four switchable steps, applied in this order to a
``[0, 1]`` float32 image:

1. ``gaussian``: Gaussian filter (sigma 1.0 by default) against quantum noise.
2. ``roi_crop``: crop to the region of interest, found by Otsu's threshold on a blurred copy
   (bone and soft tissue are brighter than the background), plus a margin.
3. ``clahe``: contrast-limited adaptive histogram equalisation.
4. ``morphology``: morphological enhancement of bone edges: ``image + top-hat - black-hat``
   with an elliptical structuring element (bright thin structures such as cortex and
   fracture lines gain contrast against their surroundings).

The same settings travel in a model card's ``preprocessing`` so that inference prepares an
image exactly as training did. :meth:`RadiographEnhancement.steps` exposes each step by name,
for debug images.

Example:
    >>> import numpy as np
    >>> image = np.zeros((64, 80), np.float32); image[16:48, 20:60] = 0.8
    >>> enhance = RadiographEnhancement(roi_crop=True, roi_margin=0.0)
    >>> enhance(image).shape
    (32, 40)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.imaging.transforms import Clahe, GaussianDenoise, Transform

__all__ = ["BoneEdgeEnhance", "OtsuRoiCrop", "RadiographEnhancement"]

Array = NDArray[np.float32]
Box = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` in pixels of the image before cropping."""


@dataclass(frozen=True)
class OtsuRoiCrop:
    """Crop to the bounding box of the pixels above Otsu's threshold, plus a margin.

    Args:
        margin: Extra border as a fraction of the box's side.
        min_fraction: Keep the whole image when the box would cover less than this fraction of
            either side (a threshold that found only a label or a marker).
    """

    margin: float = 0.05
    min_fraction: float = 0.2

    def box(self, image: Array) -> Box:
        """The ``(top, left, bottom, right)`` region to keep (the whole image if none fits)."""
        height, width = image.shape[:2]
        small = cv2.GaussianBlur(image.astype(np.float32, copy=False), (0, 0), 2.0)
        as_bytes = np.rint(np.clip(small, 0.0, 1.0) * 255).astype(np.uint8)
        _, mask = cv2.threshold(as_bytes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0 or cols.size == 0:
            return (0, 0, height, width)
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        if (bottom - top) < self.min_fraction * height or (right - left) < (
            self.min_fraction * width
        ):
            return (0, 0, height, width)
        pad_rows = round((bottom - top) * self.margin)
        pad_cols = round((right - left) * self.margin)
        return (
            max(top - pad_rows, 0),
            max(left - pad_cols, 0),
            min(bottom + pad_rows, height),
            min(right + pad_cols, width),
        )

    def __call__(self, image: Array) -> Array:
        top, left, bottom, right = self.box(image)
        return np.ascontiguousarray(image[top:bottom, left:right])


@dataclass(frozen=True)
class BoneEdgeEnhance:
    """``image + top-hat - black-hat`` with an elliptical kernel of ``kernel`` pixels, clipped.

    ``kernel`` is relative to a 512-pixel long side and scaled with the image, so a
    setting means the same anatomy at any resolution.
    """

    kernel: int = 15

    def __call__(self, image: Array) -> Array:
        side = max(3, round(self.kernel * max(image.shape[:2]) / 512) | 1)
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        source = image.astype(np.float32, copy=False)
        top_hat = cv2.morphologyEx(source, cv2.MORPH_TOPHAT, element)
        black_hat = cv2.morphologyEx(source, cv2.MORPH_BLACKHAT, element)
        return np.clip(source + top_hat - black_hat, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class RadiographEnhancement:
    """Which enhancement steps run, and their settings (see the module docstring).

    Attributes:
        gaussian: Apply the Gaussian filter.
        gaussian_sigma: Its standard deviation in pixels.
        roi_crop: Crop to the Otsu region of interest.
        roi_margin: Margin around that region, as a fraction of its side.
        clahe: Apply CLAHE.
        clahe_clip: CLAHE clip limit.
        morphology: Apply the bone-edge enhancement.
        morphology_kernel: Its structuring element size (at a 512-pixel long side).
    """

    gaussian: bool = False
    gaussian_sigma: float = 1.0
    roi_crop: bool = False
    roi_margin: float = 0.05
    clahe: bool = False
    clahe_clip: float = 2.0
    morphology: bool = False
    morphology_kernel: int = 15

    def steps(self) -> list[tuple[str, Transform]]:
        """The enabled steps, in order, as ``(name, transform)`` pairs."""
        chosen: list[tuple[str, Transform]] = []
        if self.gaussian:
            chosen.append(("gaussian", GaussianDenoise(self.gaussian_sigma)))
        if self.roi_crop:
            chosen.append(("roi_crop", OtsuRoiCrop(self.roi_margin)))
        if self.clahe:
            chosen.append(("clahe", Clahe(self.clahe_clip)))
        if self.morphology:
            chosen.append(("morphology", BoneEdgeEnhance(self.morphology_kernel)))
        return chosen

    def __call__(self, image: Array) -> Array:
        return self.apply(image)[0]

    def apply(self, image: Array) -> tuple[Array, Box]:
        """Run the steps; also return the region of the input that the output shows."""
        box = (0, 0, *image.shape[:2])
        for _, step in self.steps():
            if isinstance(step, OtsuRoiCrop):
                box = step.box(image)
            image = step(image)
        return image, (box[0], box[1], box[2], box[3])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RadiographEnhancement:
        """Build from a mapping such as :meth:`to_dict` returns; unknown keys are errors."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                "preprocessing", f"unknown key(s) {', '.join(unknown)}", f"use {sorted(known)}"
            )
        return cls(**dict(values))

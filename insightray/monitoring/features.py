"""What a monitor measures on one image: intensity statistics, geometry and DICOM metadata.

Every value is computed from a :class:`~insightray.imaging.LoadedImage` (pixels in ``[0, 1]``,
bright meaning dense) and never holds patient data: DICOM metadata is limited to modality,
body part, view position, photometric interpretation and the source format.

Example:
    >>> import numpy as np
    >>> from insightray.imaging import ImageMeta, LoadedImage
    >>> meta = ImageMeta("png", (4, 8), "MONOCHROME2", 8)
    >>> features = image_features(LoadedImage(np.full((4, 8), 0.5, np.float32), meta))
    >>> features.continuous["aspect"], features.categorical["modality"]
    (2.0, 'NONE')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from insightray.imaging import LoadedImage

FloatArray = NDArray[np.float64]

__all__ = [
    "CATEGORICAL",
    "CONTINUOUS",
    "HISTOGRAM_BINS",
    "INTENSITY",
    "FeatureTable",
    "ImageFeatures",
    "image_features",
]

#: Intensity histogram bins over ``[0, 1]``.
HISTOGRAM_BINS = 16
#: Continuous features, in the order of :attr:`ImageFeatures.vector`.
CONTINUOUS = (
    "mean",
    "std",
    "p01",
    "p50",
    "p99",
    "dark_fraction",
    "bright_fraction",
    "rows",
    "cols",
    "aspect",
    "bits_stored",
    "pixel_spacing_mm",
)
#: The intensity features the out-of-distribution guard models (size is left to drift
#: monitoring: a chest radiograph is not out of distribution for being larger).
INTENSITY = ("mean", "std", "p01", "p50", "p99", "dark_fraction", "bright_fraction")
#: Categorical features; a missing DICOM attribute is ``"none"``.
CATEGORICAL = ("modality", "body_part", "view", "photometric", "source_format")
#: Pixels darker or brighter than these count as black or saturated.
DARK_LEVEL = 0.02
BRIGHT_LEVEL = 0.98
#: Longest side the statistics are computed on (a strided view; large images are sampled).
_MAX_SIDE = 1024


@dataclass(frozen=True)
class ImageFeatures:
    """One image's monitored features.

    Attributes:
        continuous: Values of :data:`CONTINUOUS` (``pixel_spacing_mm`` is ``nan`` if unknown).
        categorical: Values of :data:`CATEGORICAL`, upper-case.
        histogram: Fraction of pixels in each of :data:`HISTOGRAM_BINS` bins over ``[0, 1]``.
    """

    continuous: dict[str, float]
    categorical: dict[str, str]
    histogram: tuple[float, ...]

    def intensity_vector(self) -> NDArray[np.float64]:
        """:data:`INTENSITY` then the histogram, as one vector."""
        values = [self.continuous[name] for name in INTENSITY] + list(self.histogram)
        return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class FeatureTable:
    """Per-image features of one set of images.

    Attributes:
        continuous: Feature name -> one value per image (``nan`` where unknown).
        categorical: Feature name -> one category per image.
        embedding: ``(images, dims)`` reduced model embedding (``dims`` may be 0).
    """

    continuous: dict[str, FloatArray]
    categorical: dict[str, list[str]]
    embedding: FloatArray

    def __len__(self) -> int:
        return len(self.embedding)

    def subset(self, index: NDArray[np.int64]) -> FeatureTable:
        """The rows ``index``."""
        return FeatureTable(
            {name: values[index] for name, values in self.continuous.items()},
            {name: [values[i] for i in index] for name, values in self.categorical.items()},
            self.embedding[index],
        )


def image_features(image: LoadedImage) -> ImageFeatures:
    """Measure one image (its pixels are sampled on a grid of at most 1024 per side)."""
    pixels = np.asarray(image.pixels, dtype=np.float32)
    if pixels.ndim == 3:  # colour kept by a reader: measure its gray level
        pixels = pixels[..., :3].mean(axis=2)
    step = max(1, int(np.ceil(max(pixels.shape) / _MAX_SIDE)))
    sample = np.clip(pixels[::step, ::step], 0.0, 1.0).ravel()
    p01, p50, p99 = (float(value) for value in np.percentile(sample, [1, 50, 99]))
    counts, _ = np.histogram(sample, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    meta = image.meta
    rows, cols = meta.original_size
    spacing = meta.pixel_spacing
    continuous = {
        "mean": float(sample.mean()),
        "std": float(sample.std()),
        "p01": p01,
        "p50": p50,
        "p99": p99,
        "dark_fraction": float(np.mean(sample <= DARK_LEVEL)),
        "bright_fraction": float(np.mean(sample >= BRIGHT_LEVEL)),
        "rows": float(rows),
        "cols": float(cols),
        "aspect": float(cols) / float(max(rows, 1)),
        "bits_stored": float(meta.bits_stored),
        "pixel_spacing_mm": float("nan") if spacing is None else float(np.mean(spacing)),
    }
    categorical = {
        "modality": _category(meta.modality),
        "body_part": _category(meta.body_part),
        "view": _category(meta.view),
        "photometric": _category(meta.photometric),
        "source_format": _category(meta.source_format),
    }
    histogram = tuple(float(count) / float(max(sample.size, 1)) for count in counts)
    return ImageFeatures(continuous, categorical, histogram)


def _category(value: str | None) -> str:
    text = (value or "").strip().upper()
    return text or "NONE"

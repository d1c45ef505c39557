"""Reference profiles: what a model saw in training, stored beside its weights.

A profile (``profile.json`` in the model folder) holds, for the images a model was trained on:
the per-image features of :mod:`~insightray.monitoring.features`, the model's pooled backbone
embedding (raw, in ``profile.npz`` beside it), the model's outputs (boxes per image and best
score, or the fracture probability), the DICOM modalities and body parts it accepts, and two
:class:`~insightray.monitoring.scoring.DistanceModel` s (embedding and intensity) whose
thresholds were set on held-out training images at a stated false-alarm rate. The
out-of-distribution guard and the drift monitor read it.

Example:
    >>> from insightray.models.catalog import resolve_card
    >>> profile = load_profile(resolve_card(None, default="cxr-tbx11k-yolov5s"))
    >>> profile.accepted_modalities, profile.rate
    (('CR', 'DX', 'RG'), 0.01)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.engine import Predictor
from insightray.errors import ConfigError
from insightray.imaging import LoadedImage, read_image
from insightray.models import ModelCard
from insightray.monitoring.embedding import Embedder, module_of
from insightray.monitoring.features import CATEGORICAL, FeatureTable, image_features
from insightray.monitoring.scoring import DistanceModel

__all__ = [
    "EMBEDDING_FILE",
    "PROFILE_FILE",
    "RADIOGRAPH_MODALITIES",
    "ReferenceProfile",
    "Sample",
    "build_profile",
    "load_profile",
    "measure",
    "output_features",
    "write_profile",
]

PROFILE_FILE = "profile.json"
#: The raw reference embedding, beside the profile (``numpy.savez_compressed``, no pickles).
EMBEDDING_FILE = "profile.npz"
PROFILE_VERSION = 1
#: DICOM modalities of projection radiographs (computed, digital, conventional).
RADIOGRAPH_MODALITIES = ("CR", "DX", "RG")
#: Principal components kept of the embedding and of the intensity features.
EMBEDDING_COMPONENTS = 32
INTENSITY_COMPONENTS = 8


@dataclass(frozen=True)
class Sample:
    """Features of a set of images, before reduction.

    Attributes:
        table: Per-image features (its embedding is the raw pooled activation).
        intensity: ``(images, features)`` intensity vectors.
    """

    table: FeatureTable
    intensity: NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceProfile:
    """A model's reference distribution and out-of-distribution thresholds.

    Attributes:
        model: ``name``, ``version`` and ``weights_sha256`` of the model profiled.
        data: What images it was built from, in words.
        layer: The embedding layer.
        rate: False-alarm rate the thresholds were set for (split between the two models).
        content: Distance model of the raw embedding.
        intensity: Distance model of the intensity features.
        accepted_modalities: DICOM modalities the model takes (others are warned about).
        accepted_body_parts: DICOM body parts it takes; empty accepts any.
        table: Per-image reference features, with the raw embedding (stored in ``profile.npz``).
    """

    model: dict[str, str]
    data: str
    layer: str
    rate: float
    content: DistanceModel
    intensity: DistanceModel
    accepted_modalities: tuple[str, ...]
    accepted_body_parts: tuple[str, ...]
    table: FeatureTable

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        table = self.table
        return {
            "profile_version": PROFILE_VERSION,
            "model": self.model,
            "data": self.data,
            "images": len(table),
            "layer": self.layer,
            "false_alarm_rate": self.rate,
            "accepted": {
                "modalities": list(self.accepted_modalities),
                "body_parts": list(self.accepted_body_parts),
            },
            "content": self.content.to_dict(),
            "intensity": self.intensity.to_dict(),
            "features": {
                "continuous": {k: [_short(v) for v in vs] for k, vs in table.continuous.items()},
                "categorical": table.categorical,
                "embedding": f"{EMBEDDING_FILE} (float16, {table.embedding.shape[1]} columns)",
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], embedding: NDArray[np.float64]) -> ReferenceProfile:
        """Read the JSON form and the raw embedding stored beside it.

        Raises:
            ConfigError: Another profile version, or a malformed file.
        """
        if data.get("profile_version") != PROFILE_VERSION:
            raise ConfigError("reference profile", "unknown profile_version", "build it again")
        try:
            features = data["features"]
            table = FeatureTable(
                {k: np.asarray(v, dtype=np.float64) for k, v in features["continuous"].items()},
                {k: [str(item) for item in v] for k, v in features["categorical"].items()},
                np.asarray(embedding, dtype=np.float64),
            )
            return cls(
                {k: str(v) for k, v in data["model"].items()},
                str(data["data"]),
                str(data["layer"]),
                float(data["false_alarm_rate"]),
                DistanceModel.from_dict(data["content"]),
                DistanceModel.from_dict(data["intensity"]),
                tuple(data["accepted"]["modalities"]),
                tuple(data["accepted"]["body_parts"]),
                table,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                "reference profile", f"malformed ({error})", "build it again"
            ) from error

    def save(self, folder: str | Path) -> Path:
        """Write ``profile.json`` into a model folder; returns its path."""
        path = Path(folder) / PROFILE_FILE
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
        embedding = self.table.embedding.astype(np.float16)
        np.savez_compressed(Path(folder) / EMBEDDING_FILE, embedding=embedding)
        return path


def load_profile(card_path: str | Path) -> ReferenceProfile | None:
    """The profile beside a model card, or ``None`` when the model has none."""
    path = Path(card_path).parent / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path.with_name(EMBEDDING_FILE), allow_pickle=False) as stored:
            embedding = stored["embedding"]
    except (OSError, KeyError, ValueError) as error:
        raise ConfigError(
            str(path), f"its {EMBEDDING_FILE} is missing or unreadable", "build it again"
        ) from error
    return ReferenceProfile.from_dict(json.loads(path.read_text(encoding="utf-8")), embedding)


def output_features(result: Any) -> dict[str, float]:
    """What a model answered, as numbers: boxes and best score, or the probability."""
    if hasattr(result, "detections"):
        scores = [detection.score for detection in result.detections]
        return {"output_boxes": float(len(scores)), "output_max_score": max(scores, default=0.0)}
    if hasattr(result, "probability"):
        return {"output_probability": float(result.probability)}
    return {}


def measure(
    paths: Sequence[Path],
    embedder: Embedder,
    predictor: Predictor | None = None,
    *,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> Sample:
    """Read images in batches and measure their features, raw embedding and model outputs."""
    continuous: dict[str, list[float]] = {}
    categorical: dict[str, list[str]] = {name: [] for name in CATEGORICAL}
    embeddings: list[NDArray[np.float64]] = []
    intensity: list[NDArray[np.float64]] = []
    for start in range(0, len(paths), batch_size):
        images = [read_image(path) for path in paths[start : start + batch_size]]
        outputs, embedded = _run(images, embedder, predictor)
        for image, output in zip(images, outputs, strict=True):
            features = image_features(image)
            values = features.continuous | output_features(output)
            for name, value in values.items():
                continuous.setdefault(name, []).append(value)
            for name in CATEGORICAL:
                categorical[name].append(features.categorical[name])
            intensity.append(features.intensity_vector())
        embeddings.append(embedded)
        if progress is not None:
            progress(len(images))
    table = FeatureTable(
        {name: np.asarray(values) for name, values in continuous.items()},
        categorical,
        np.concatenate(embeddings),
    )
    return Sample(table, np.stack(intensity))


def build_profile(
    sample: Sample,
    card: ModelCard,
    layer: str,
    *,
    data: str,
    rate: float = 0.01,
    modalities: Iterable[str] = RADIOGRAPH_MODALITIES,
    body_parts: Iterable[str] = (),
    groups: Sequence[str] | None = None,
) -> ReferenceProfile:
    """Fit the distance models on a measured sample and keep its features.

    ``groups`` (one per image) keeps augmented copies of one source image in one fold when the
    thresholds are set (see :meth:`DistanceModel.fit`).

    The false-alarm ``rate`` is split evenly between the embedding and the intensity model,
    so an in-distribution image is flagged by either with probability at most about ``rate``.
    Modalities seen in the sample are accepted besides ``modalities``.
    """
    half = rate / 2.0
    content = DistanceModel.fit(sample.table.embedding, EMBEDDING_COMPONENTS, half, groups=groups)
    intensity = DistanceModel.fit(sample.intensity, INTENSITY_COMPONENTS, half, groups=groups)
    seen = {value for value in sample.table.categorical["modality"] if value != "NONE"}
    table = sample.table
    model = {
        "name": card.name,
        "version": card.version,
        "weights_sha256": card.weights_sha256 or "",
    }
    return ReferenceProfile(
        model,
        data,
        layer,
        rate,
        content,
        intensity,
        tuple(sorted(seen | {m.upper() for m in modalities})),
        tuple(sorted(part.upper() for part in body_parts)),
        table,
    )


def write_profile(
    card_path: str | Path,
    paths: Sequence[Path],
    *,
    data: str,
    rate: float = 0.01,
    modalities: Iterable[str] = RADIOGRAPH_MODALITIES,
    body_parts: Iterable[str] = (),
    groups: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Measure a model's training images and store its profile beside its card.

    What ``insightray monitor profile`` and the end of ``insightray train fracture`` /
    ``train detect`` run. With ``limit``, at most that many images are measured, a sample
    drawn with ``seed`` (``groups`` follow their images).

    Returns:
        The ``profile.json`` written.

    Raises:
        ConfigError: The model has no PyTorch network, or too few images (at least 10).

    Example:
        >>> write_profile("runs/fracture/model/card.json", paths, data="train split",
        ...               limit=300)  # doctest: +SKIP
    """
    from insightray.engine import load_predictor

    card_path = Path(card_path)
    predictor = load_predictor(card_path)
    network = module_of(predictor)
    if network is None:
        raise ConfigError(
            f"model {card_path}", "it has no PyTorch network", "profile a torch model"
        )
    chosen = list(range(len(paths)))
    if limit is not None and len(paths) > limit:
        chosen = sorted(np.random.default_rng(seed).choice(len(paths), limit, replace=False))
    embedder = Embedder(network, predictor.card)
    sample = measure([paths[i] for i in chosen], embedder, predictor, progress=progress)
    built = build_profile(
        sample,
        predictor.card,
        embedder.layer,
        data=data,
        rate=rate,
        modalities=modalities,
        body_parts=body_parts,
        groups=None if groups is None else [groups[i] for i in chosen],
    )
    return built.save(card_path.parent)


def _run(
    images: list[LoadedImage], embedder: Embedder, predictor: Predictor | None
) -> tuple[Sequence[Any], NDArray[np.float64]]:
    """Outputs and embeddings of a batch: one forward pass when the predictor's network is
    the embedder's."""
    if predictor is None:
        return [None] * len(images), embedder.embed([image.pixels for image in images])
    if module_of(predictor) is embedder.model:
        return embedder.capture(lambda: predictor.predict(images))
    return predictor.predict(images), embedder.embed([image.pixels for image in images])


def _short(value: float) -> float:
    return float(f"{value:.5g}")

"""The out-of-distribution guard: does an image look like what the model was trained on?

For every image the guard gives an ``ood_score`` and a list of ``warnings`` (empty when all is
well), read from the model's reference profile:

- DICOM modality or body part outside what the model takes (an MR slice, a knee radiograph
  sent to a chest model);
- a blank image (almost no contrast) or a saturated one (most pixels at the maximum);
- intensities unlike the training images' (and, when the negated image would fit, a hint that
  the image looks inverted, as an uncorrected MONOCHROME1 does);
- content unlike the training images in the model's own embedding (a photograph, another body
  part, another modality).

``ood_score`` is the larger of the embedding and intensity distances in units of their
thresholds, which were set on held-out training images at the profile's false-alarm rate:
above 1 means beyond the threshold.

Example:
    >>> from insightray.engine import load_predictor
    >>> from insightray.imaging import read_image
    >>> predictor = load_predictor(task="detection")  # doctest: +SKIP
    >>> guard = OodGuard.for_predictor(predictor, card_path)  # doctest: +SKIP
    >>> images = [read_image("knee.dcm")]  # doctest: +SKIP
    >>> guard.run(lambda: predictor.predict(images), images)[0].warnings  # doctest: +SKIP
    ('body part KNEE: this model was trained on CHEST images', ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from insightray.engine import Predictor, load_model
from insightray.engine.predictor import weights_path
from insightray.errors import ConfigError
from insightray.imaging import LoadedImage
from insightray.models import ModelCard
from insightray.models.catalog import default_model, find_task, resolve_card
from insightray.monitoring.embedding import Embedder, module_of
from insightray.monitoring.features import ImageFeatures, image_features
from insightray.monitoring.profile import ReferenceProfile, load_profile

__all__ = ["BLANK_STD", "SATURATED_FRACTION", "Observation", "OodGuard", "Verdict"]

#: An image whose intensities spread less than this (standard deviation) is blank.
BLANK_STD = 0.01
#: An image with more than this fraction of pixels at the maximum is saturated.
SATURATED_FRACTION = 0.5

R = TypeVar("R")
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Verdict:
    """The guard's answer for one image.

    Attributes:
        ood_score: Distance from the training images in threshold units (above 1: far).
        warnings: Why the image looks out of distribution; empty when it does not.
    """

    ood_score: float
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Observation:
    """What the guard measured on a batch, for a drift window (numbers only).

    Attributes:
        results: The predictor's results, with the guard's fields filled in.
        features: Each image's :class:`~insightray.monitoring.features.ImageFeatures`.
        embeddings: ``(images, dims)`` raw embeddings.
        verdicts: Each image's :class:`Verdict`.
    """

    results: Sequence[object]
    features: Sequence[ImageFeatures]
    embeddings: FloatArray
    verdicts: Sequence[Verdict]


class OodGuard:
    """Checks images against a model's reference profile.

    Args:
        profile: The model's :class:`~insightray.monitoring.profile.ReferenceProfile`.
        embedder: The model's embedder (same layer as the profile).
    """

    def __init__(self, profile: ReferenceProfile, embedder: Embedder) -> None:
        if embedder.layer != profile.layer:
            raise ConfigError(
                "reference profile",
                f"it embeds layer {profile.layer}, not {embedder.layer}",
                "build the profile again with `insightray monitor profile`",
            )
        self.profile = profile
        self.embedder = embedder
        #: Whether the embedder hooks the predictor's own network (see :meth:`run`).
        self.shares_model = False

    @classmethod
    def for_predictor(cls, predictor: Predictor, card_path: str | Path) -> OodGuard | None:
        """The guard of a loaded model; ``None`` when its folder holds no profile.

        A PyTorch predictor's own network gives the embedding during the prediction (one
        forward pass); otherwise (ONNX) the card's weights are loaded once more in PyTorch.

        Raises:
            ConfigError: The profile was built for other weights.
        """
        profile = load_profile(card_path)
        if profile is None:
            return None
        card = predictor.card
        _check_weights(profile, card)
        network = module_of(predictor)
        shared = network is not None
        if network is None:
            network = load_model(card, weights_path(card, Path(card_path)))
        guard = cls(profile, Embedder(network, card, profile.layer))
        guard.shares_model = shared
        return guard

    @classmethod
    def for_model(
        cls, predictor: Predictor, model: str | Path | None, task: str
    ) -> OodGuard | None:
        """:meth:`for_predictor` for the model ``--model`` named (or ``task``'s default)."""
        card_path = resolve_card(model, default=default_model(find_task(task).name))
        return cls.for_predictor(predictor, card_path)

    def run(
        self,
        predict: Callable[[], Sequence[R]],
        images: Sequence[LoadedImage],
        observe: Callable[[Observation], None] | None = None,
    ) -> list[R]:
        """Call ``predict`` (the predictor on ``images``) and fill in each result's
        ``ood_score`` and ``warnings``; results must be dataclasses with those fields.

        ``observe``, if given, receives what was measured (a drift window's rows): the
        embedding and features are computed once, for the guard and the window alike.
        """
        if self.shares_model:
            results, embeddings = self.embedder.capture(predict)
        else:
            results = predict()
            embeddings = self.embedder.embed([image.pixels for image in images])
        features, verdicts = self._measure(images, embeddings)
        checked = [
            dataclasses.replace(result, ood_score=verdict.ood_score, warnings=verdict.warnings)  # type: ignore[type-var]
            for result, verdict in zip(results, verdicts, strict=True)
        ]
        if observe is not None:
            observe(Observation(checked, features, embeddings, verdicts))
        return checked

    def check(
        self, images: Sequence[LoadedImage], embeddings: FloatArray | None = None
    ) -> list[Verdict]:
        """One :class:`Verdict` per image (``embeddings``: their raw embeddings, if known)."""
        if not images:
            return []
        if embeddings is None:
            embeddings = self.embedder.embed([image.pixels for image in images])
        return self._measure(images, embeddings)[1]

    def _measure(
        self, images: Sequence[LoadedImage], embeddings: FloatArray
    ) -> tuple[list[ImageFeatures], list[Verdict]]:
        features = [image_features(image) for image in images]
        if not features:
            return [], []
        content = self.profile.content.score(embeddings)
        rows = np.stack([item.intensity_vector() for item in features])
        intensity = self.profile.intensity.score(rows)
        verdicts = [
            self._verdict(item, float(c), float(i))
            for item, c, i in zip(features, content, intensity, strict=True)
        ]
        return features, verdicts

    def _verdict(self, features: ImageFeatures, content: float, intensity: float) -> Verdict:
        warnings = [*self._metadata_warnings(features), *_pixel_warnings(features)]
        if intensity > 1.0:
            warnings.append(
                f"intensities unlike the training images ({intensity:.1f}x the threshold)"
                + self._inverted_hint(features)
            )
        if content > 1.0:
            warnings.append(
                f"content unlike the training images ({content:.1f}x the threshold): "
                "another body part, modality or a non-medical image?"
            )
        return Verdict(round(max(content, intensity), 3), tuple(warnings))

    def _metadata_warnings(self, features: ImageFeatures) -> list[str]:
        found: list[str] = []
        modality = features.categorical["modality"]
        accepted = self.profile.accepted_modalities
        if modality != "NONE" and accepted and modality not in accepted:
            found.append(
                f"modality {modality}: this model takes {'/'.join(accepted)} radiographs only"
            )
        part = features.categorical["body_part"]
        parts = self.profile.accepted_body_parts
        if part != "NONE" and parts and part not in parts:
            found.append(f"body part {part}: this model was trained on {'/'.join(parts)} images")
        return found

    def _inverted_hint(self, features: ImageFeatures) -> str:
        negated = _negated(features).intensity_vector()[None, :]
        if float(self.profile.intensity.score(negated)[0]) <= 1.0:
            return "; it looks inverted (check MONOCHROME1/MONOCHROME2)"
        return ""


def _pixel_warnings(features: ImageFeatures) -> list[str]:
    values = features.continuous
    if values["bright_fraction"] > SATURATED_FRACTION:
        share = 100 * values["bright_fraction"]
        return [f"saturated image: {share:.0f} % of pixels at the maximum"]
    if values["std"] < BLANK_STD:
        return [f"blank image: almost no contrast (standard deviation {values['std']:.4f})"]
    return []


def _negated(features: ImageFeatures) -> ImageFeatures:
    """The features ``1 - pixels`` would have (percentiles and histogram mirrored)."""
    values = dict(features.continuous)
    values["mean"] = 1.0 - values["mean"]
    values["p01"], values["p99"] = 1.0 - values["p99"], 1.0 - values["p01"]
    values["p50"] = 1.0 - values["p50"]
    values["dark_fraction"], values["bright_fraction"] = (
        values["bright_fraction"],
        values["dark_fraction"],
    )
    return ImageFeatures(values, features.categorical, tuple(reversed(features.histogram)))


def _check_weights(profile: ReferenceProfile, card: ModelCard) -> None:
    expected = profile.model.get("weights_sha256", "")
    if expected and card.weights_sha256 and expected != card.weights_sha256:
        raise ConfigError(
            f"reference profile of {card.name}",
            "it was built for other weights",
            "build it again with `insightray monitor profile`",
        )

"""Distance from a reference set: a probabilistic-PCA Mahalanobis score and its threshold.

Features are standardised with the reference's mean and spread, then modelled as a Gaussian
whose covariance is probabilistic PCA's (Tipping and Bishop 1999): the leading ``k`` principal
directions keep their variances ``lambda_i`` and every other direction shares the mean
discarded variance ``sigma^2``. The squared Mahalanobis distance is then
``sum_i z_i^2 / lambda_i + |residual|^2 / sigma^2`` (``z`` the principal scores), which needs
only the ``k`` directions, not a full covariance matrix. The threshold is the ``1 - rate``
quantile of the reference's own distances, each computed by a model fitted without it
(k-fold cross-fitting), so a new image from the reference distribution exceeds it with
probability close to ``rate``.

Example:
    >>> rng = np.random.default_rng(0)
    >>> model = DistanceModel.fit(rng.normal(size=(300, 6)), components=3, rate=0.01)
    >>> bool(model.score(np.full((1, 6), 8.0))[0] > 1.0)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError

__all__ = ["DistanceModel"]

FloatArray = NDArray[np.float64]
#: Smallest spread a feature is divided by (constant features would divide by zero).
_MIN_SCALE = 1e-6


@dataclass(frozen=True)
class DistanceModel:
    """A fitted probabilistic-PCA Gaussian and its false-alarm threshold.

    Attributes:
        mean: Per-feature mean of the reference.
        scale: Per-feature standard deviation (at least ``1e-6``).
        components: ``(k, features)`` principal directions of the standardised reference.
        variances: Their variances.
        noise_variance: The mean variance of the discarded directions.
        threshold: Squared distance exceeded by a fraction ``rate`` of held-out reference rows.
        rate: That false-alarm rate.
    """

    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    variances: FloatArray
    noise_variance: float
    threshold: float
    rate: float

    @classmethod
    def fit(
        cls,
        rows: FloatArray,
        components: int,
        rate: float,
        folds: int = 5,
        seed: int = 0,
        groups: Sequence[str] | None = None,
    ) -> DistanceModel:
        """Fit on ``(n, features)`` reference rows; threshold by ``folds``-fold cross-fitting.

        With ``groups`` (e.g. the source image of augmented copies) the folds keep each group
        whole, so that no row is scored by a model fitted on its own copies.

        Raises:
            ConfigError: Too few rows for the folds, or a rate outside ``(0, 0.5)``.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if not 0 < rate < 0.5:
            raise ConfigError(f"false-alarm rate {rate}", "must lie in (0, 0.5)", "use e.g. 0.01")
        if len(rows) < 2 * folds:
            raise ConfigError(
                "reference profile", f"{len(rows)} images", f"give at least {2 * folds}"
            )
        from sklearn.model_selection import GroupKFold, KFold  # fitting only

        held_out = np.empty(len(rows))
        splitter = (
            KFold(folds, shuffle=True, random_state=seed)
            if groups is None
            else GroupKFold(folds, shuffle=True, random_state=seed)
        )
        for train, test in splitter.split(rows, groups=groups):
            held_out[test] = cls.fit_projection(rows[train], components).distance(rows[test])
        threshold = float(np.quantile(held_out, 1.0 - rate))
        fitted = cls.fit_projection(rows, components)
        return cls(
            fitted.mean, fitted.scale, fitted.components, fitted.variances,
            fitted.noise_variance, threshold, rate,
        )  # fmt: skip

    @classmethod
    def fit_projection(cls, rows: FloatArray, components: int = 32) -> DistanceModel:
        """Fit the standardisation and PCA only (no threshold: ``score`` is meaningless)."""
        from sklearn.decomposition import PCA

        mean = rows.mean(axis=0)
        scale = np.maximum(rows.std(axis=0), _MIN_SCALE)
        standard = (rows - mean) / scale
        kept = max(1, min(components, standard.shape[1] - 1, len(rows) - 1))
        pca = PCA(n_components=kept, svd_solver="full").fit(standard)
        noise = max(float(pca.noise_variance_), _MIN_SCALE)
        variances = np.maximum(pca.explained_variance_, noise)
        return cls(mean, scale, pca.components_, variances, noise, 1.0, 0.5)

    def project(self, rows: FloatArray) -> FloatArray:
        """Principal scores ``(n, k)`` of ``rows``, whitened (unit variance on the reference)."""
        standard = (np.asarray(rows, dtype=np.float64) - self.mean) / self.scale
        projected: FloatArray = (standard @ self.components.T) / np.sqrt(self.variances)
        return projected

    def distance(self, rows: FloatArray) -> FloatArray:
        """Squared probabilistic-PCA Mahalanobis distance of each row."""
        standard = (np.asarray(rows, dtype=np.float64) - self.mean) / self.scale
        scores = standard @ self.components.T
        residual = np.sum(standard**2, axis=1) - np.sum(scores**2, axis=1)
        distance: FloatArray = np.sum(scores**2 / self.variances, axis=1)
        distance += np.maximum(residual, 0.0) / self.noise_variance
        return distance

    def score(self, rows: FloatArray) -> FloatArray:
        """Distance in units of the threshold: above 1 is beyond the false-alarm threshold."""
        return self.distance(rows) / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (floats to 7 significant digits)."""
        return {
            "mean": _round(self.mean),
            "scale": _round(self.scale),
            "components": [_round(row) for row in self.components],
            "variances": _round(self.variances),
            "noise_variance": float(f"{self.noise_variance:.7g}"),
            "threshold": float(f"{self.threshold:.7g}"),
            "rate": self.rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistanceModel:
        """Read the JSON form.

        Raises:
            ConfigError: A field is missing or has the wrong shape.
        """
        try:
            model = cls(
                np.asarray(data["mean"], dtype=np.float64),
                np.asarray(data["scale"], dtype=np.float64),
                np.asarray(data["components"], dtype=np.float64),
                np.asarray(data["variances"], dtype=np.float64),
                float(data["noise_variance"]),
                float(data["threshold"]),
                float(data["rate"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError("reference profile", f"a distance model is malformed ({error})",
                              "build the profile again") from error  # fmt: skip
        width = len(model.mean)
        if model.components.ndim != 2 or model.components.shape[1] != width:
            raise ConfigError("reference profile", "the PCA shapes disagree", "build it again")
        return model


def _round(values: FloatArray) -> list[float]:
    return [float(f"{value:.7g}") for value in values]

"""Temperature scaling of a binary classifier's logits (Guo et al., 2017).

One scalar ``T > 0`` divides every logit before the sigmoid; it is fitted by minimising the
negative log-likelihood (NLL) of held-out labels (out-of-fold or validation predictions,
never a set reported as held out). The ranking, hence the ROC AUC, is unchanged; an
over-confident model gets ``T > 1``. The one-dimensional minimisation over ``log T`` is
scipy's bounded Brent search (``T`` in ``[0.05, 20]``).

Example:
    >>> labels = [1, 0, 1, 0, 1, 0, 1, 1]
    >>> logits = [8.0, -8.0, 6.0, 5.0, 7.0, -6.0, -5.0, 9.0]   # two confident mistakes
    >>> t = fit_temperature(labels, logits)
    >>> t > 1, binary_nll(labels, scaled_probabilities(logits, t)) < binary_nll(
    ...     labels, scaled_probabilities(logits, 1.0))
    (True, True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from insightray.errors import ConfigError

__all__ = ["binary_nll", "fit_temperature", "probability_logits", "scaled_probabilities"]

_LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))
_EPS = 1e-12


def scaled_probabilities(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """``sigmoid(logits / temperature)``."""
    values = np.asarray(logits, dtype=np.float64) / temperature
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * values)))


def probability_logits(probabilities: ArrayLike) -> NDArray[np.float64]:
    """The logits of probabilities (clipped away from 0 and 1)."""
    values = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(values) - np.log1p(-values))


def binary_nll(labels: ArrayLike, probabilities: ArrayLike) -> float:
    """Mean negative log-likelihood of 0/1 labels under the probabilities."""
    truth = np.asarray(labels, dtype=np.float64)
    values = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(truth * np.log(values) + (1 - truth) * np.log1p(-values)))


def _nll_of_logits(truth: NDArray[np.float64], logits: NDArray[np.float64]) -> float:
    # log(1 + exp(z)) - y z, stable for large |z|
    return float(np.mean(np.logaddexp(0.0, logits) - truth * logits))


def fit_temperature(labels: ArrayLike, logits: ArrayLike) -> float:
    """The temperature minimising the NLL of ``labels`` under ``sigmoid(logits / T)``.

    Raises:
        ConfigError: Lengths differ, fewer than 2 images, one class only, or non-finite logits.
    """
    truth = np.asarray(labels, dtype=np.float64).ravel()
    values = np.asarray(logits, dtype=np.float64).ravel()
    if truth.shape != values.shape or truth.size < 2:
        raise ConfigError("temperature scaling", "needs 2+ labels, one logit each", "")
    if truth.min() == truth.max():
        raise ConfigError(
            "temperature scaling", "the calibration data holds one class only", "add both"
        )
    if not np.isfinite(values).all():
        raise ConfigError("temperature scaling", "a logit is not finite", "check the model")
    result = minimize_scalar(
        lambda log_t: _nll_of_logits(truth, values / np.exp(log_t)),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))

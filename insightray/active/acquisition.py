"""Acquisition functions: how informative an unlabelled image would be to label.

Pure NumPy over model outputs, so they serve the classifier, the detector and the
simulation alike. Higher scores mean "label this first".

- :func:`entropy_scores`: predictive entropy of the class probabilities.
- :func:`margin_scores`: one minus the gap between the two most likely classes.
- :func:`bald_scores`: BALD (Houlsby et al. 2011; Gal et al. 2017), the mutual information
  between the prediction and the weights, estimated from Monte-Carlo dropout samples:
  ``H[mean_t p_t] - mean_t H[p_t]``. High when the passes disagree, not merely when each is
  unsure.
- :func:`k_center_greedy`: the core-set batch (Sener & Savarese 2018): repeatedly pick the
  image farthest from everything labelled or already picked, in an embedding space, so a
  batch covers the data instead of piling onto one uncertain cluster.
- :func:`badge_select`: BADGE (Ash et al. 2020): each image's gradient embedding, the gradient
  of the loss at its own predicted label with respect to the last layer's weights
  (:func:`gradient_embeddings`: ``(p - onehot(argmax p)) x embedding``, whose length grows
  with the model's uncertainty), then k-means++ seeding over those: uncertain and diverse in
  one batch.
- :func:`random_scores`: the baseline every strategy must beat.

These are a few dozen lines; ``baal`` (the maintained library) would pull a training
framework in for them, so they are written here.

Example:
    >>> p = np.array([0.02, 0.5, 0.9])
    >>> int(np.argmax(entropy_scores(p))), int(np.argmax(margin_scores(p)))
    (1, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError

__all__ = [
    "as_class_probabilities",
    "badge_select",
    "bald_scores",
    "entropy_scores",
    "gradient_embeddings",
    "k_center_greedy",
    "margin_scores",
    "random_scores",
]

FloatArray = NDArray[np.float64]
_EPS = 1e-12


def as_class_probabilities(probabilities: NDArray[Any], *, binary: bool) -> FloatArray:
    """Class probabilities ``(..., C)``; with ``binary`` the input holds positive-class
    probabilities ``(...)`` and becomes ``(..., 2)``.

    Raises:
        ConfigError: Values outside ``[0, 1]``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ConfigError("probabilities", "values lie outside [0, 1]", "pass probabilities")
    return np.stack([1.0 - p, p], axis=-1) if binary else p


def _entropy(p: FloatArray) -> FloatArray:
    return -(p * np.log(np.clip(p, _EPS, 1.0))).sum(axis=-1)  # type: ignore[no-any-return]


def entropy_scores(probabilities: NDArray[Any]) -> FloatArray:
    """Predictive entropy (nats) per image; ``probabilities`` is ``(N,)`` binary or
    ``(N, C)``."""
    p = np.asarray(probabilities)
    return _entropy(as_class_probabilities(p, binary=p.ndim == 1))


def margin_scores(probabilities: NDArray[Any]) -> FloatArray:
    """``1 - (p_first - p_second)`` per image: 1 at a tie, 0 when certain."""
    p = np.asarray(probabilities)
    p = np.sort(as_class_probabilities(p, binary=p.ndim == 1), axis=-1)
    return 1.0 - (p[..., -1] - p[..., -2])  # type: ignore[no-any-return]


def bald_scores(samples: NDArray[Any]) -> FloatArray:
    """BALD mutual information from ``(T, N)`` binary or ``(T, N, C)`` Monte-Carlo samples.

    Raises:
        ConfigError: Fewer than two samples.
    """
    p = np.asarray(samples, dtype=np.float64)
    if p.ndim not in (2, 3) or p.shape[0] < 2:
        raise ConfigError("MC samples", f"shape {p.shape}", "give (passes >= 2, images)")
    p = as_class_probabilities(p, binary=p.ndim == 2)
    mean_entropy = _entropy(p.mean(axis=0))
    expected_entropy = _entropy(p).mean(axis=0)
    return np.maximum(mean_entropy - expected_entropy, 0.0)  # type: ignore[no-any-return]


def random_scores(count: int, seed: int = 0) -> FloatArray:
    """Uniform random scores: the random-sampling baseline."""
    return np.random.default_rng(seed).random(count)


def k_center_greedy(
    embeddings: NDArray[Any],
    n: int,
    labelled: NDArray[Any] | None = None,
    seed: int = 0,
) -> tuple[list[int], FloatArray]:
    """Core-set selection: ``n`` indices into ``embeddings``, in the order picked, each with
    its distance to the nearest labelled or earlier-picked embedding when it was picked.

    With no labelled embeddings the first pick is random (``seed``).

    Raises:
        ConfigError: ``embeddings`` is not 2-D, or ``labelled`` has another width.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError("embeddings", f"shape {x.shape}", "give (images, features)")
    n = min(n, len(x))
    if n <= 0:
        return [], np.zeros(0)
    nearest = np.full(len(x), np.inf)
    if labelled is not None and len(labelled):
        centres = np.asarray(labelled, dtype=np.float64)
        if centres.ndim != 2 or centres.shape[1] != x.shape[1]:
            raise ConfigError("labelled embeddings", f"shape {centres.shape}", "match the pool")
        for start in range(0, len(centres), 256):
            block = centres[start : start + 256]
            distances = np.sqrt(((x[:, None, :] - block[None]) ** 2).sum(-1)).min(axis=1)
            nearest = np.minimum(nearest, distances)
    picked: list[int] = []
    gains: list[float] = []
    for _ in range(n):
        if np.isinf(nearest).all():  # nothing labelled yet: start anywhere
            index = int(np.random.default_rng(seed).integers(len(x)))
        else:
            index = int(np.argmax(nearest))
        gains.append(float(nearest[index]))
        picked.append(index)
        nearest = np.minimum(nearest, np.sqrt(((x - x[index]) ** 2).sum(-1)))
        nearest[picked] = -1.0
    return picked, np.array(gains)


def gradient_embeddings(probabilities: NDArray[Any], embeddings: NDArray[Any]) -> FloatArray:
    """BADGE's gradient embeddings ``(N, C * D)``: for each image the gradient of the
    cross-entropy at its predicted label with respect to the last linear layer's weights,
    ``(p_c - [c = argmax p]) * z`` for every class ``c``, from the class probabilities
    (``(N,)`` binary or ``(N, C)``) and the layer's inputs ``z`` (``(N, D)``).

    A one-logit (sigmoid) classifier is taken as its two-class softmax equivalent.

    Raises:
        ConfigError: The shapes do not pair up.
    """
    p = np.asarray(probabilities)
    p = as_class_probabilities(p, binary=p.ndim == 1)
    z = np.asarray(embeddings, dtype=np.float64)
    if p.ndim != 2 or z.ndim != 2 or len(p) != len(z):
        raise ConfigError(
            "BADGE inputs", f"probabilities {p.shape}, embeddings {z.shape}", "give (N,) and (N, D)"
        )
    residual = p - np.eye(p.shape[1])[np.argmax(p, axis=1)]
    return (residual[:, :, None] * z[:, None, :]).reshape(len(z), -1)  # type: ignore[no-any-return]


def badge_select(
    probabilities: NDArray[Any], embeddings: NDArray[Any], n: int, seed: int = 0
) -> tuple[list[int], FloatArray]:
    """BADGE: ``n`` indices picked by k-means++ seeding (Arthur & Vassilvitskii 2007) over the
    :func:`gradient_embeddings`, in the order picked, each with its squared distance to the
    nearest earlier pick when it was picked (the first: its squared gradient norm).

    The first pick is the largest gradient (the most uncertain image, weighted by its
    embedding's size), as in the authors' code; each later one is drawn with probability
    proportional to that squared distance (``seed``), so a batch spreads over the uncertain
    images instead of taking near-duplicates. Images whose gradient is zero (certain) or
    equals an earlier pick's are only drawn once nothing else is left.

    scikit-learn's ``kmeans_plusplus`` adds greedy local trials and picks its first centre at
    random, neither of which BADGE does, so the seeding is written here.
    """
    g = gradient_embeddings(probabilities, embeddings)
    n = min(n, len(g))
    if n <= 0:
        return [], np.zeros(0)
    rng = np.random.default_rng(seed)
    nearest = (g**2).sum(axis=1)
    picked: list[int] = []
    gains: list[float] = []
    for _ in range(n):
        if not picked:
            index = int(np.argmax(nearest))
        else:
            weights = np.where(np.isin(np.arange(len(g)), picked), 0.0, nearest)
            total = weights.sum()
            if total > 0:
                index = int(rng.choice(len(g), p=weights / total))
            else:  # every image left is certain or repeats a pick: take them in order
                index = next(i for i in range(len(g)) if i not in picked)
        gains.append(float(nearest[index]))
        picked.append(index)
        nearest = np.minimum(nearest, ((g - g[index]) ** 2).sum(axis=1))
    return picked, np.array(gains)

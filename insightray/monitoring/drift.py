"""Do two sets of images differ? Per-feature tests, an embedding test and one corrected verdict.

Each continuous feature is compared with the two-sample Kolmogorov-Smirnov test, each
categorical one with a chi-squared test of the two samples' counts; both also get the
population stability index (PSI) and the Jensen-Shannon distance (base 2, in ``[0, 1]``) of
their binned distributions (deciles of the reference for continuous features). The model's
embedding gets a multivariate test: the maximum mean discrepancy (Gaussian kernel, median
bandwidth) of its 32 leading principal components (PCA fitted on both sets pooled) with a
permutation p-value. The p-values are corrected together with
Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`); the sets have drifted when
any corrected p-value is below ``alpha``.

Example:
    >>> rng = np.random.default_rng(0)
    >>> same = {"x": rng.normal(size=200)}, {"x": rng.normal(size=200)}
    >>> compare_tables(FeatureTable(same[0], {}, np.zeros((200, 0))),
    ...                FeatureTable(same[1], {}, np.zeros((200, 0)))).drift
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.distance import cdist, jensenshannon
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp

from insightray.errors import InputError
from insightray.monitoring.features import FeatureTable
from insightray.monitoring.scoring import DistanceModel

__all__ = ["DriftReport", "FeatureTable", "FeatureTest", "compare_tables", "mmd_test"]

FloatArray = NDArray[np.float64]
#: Principal components of the (pooled) embedding the MMD test compares.
EMBEDDING_DIMENSIONS = 32
#: Added to empty bins so that PSI stays finite.
_EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureTest:
    """One feature's comparison.

    Attributes:
        feature: Its name (``embedding`` for the multivariate test).
        test: ``ks``, ``chi2`` or ``mmd``.
        statistic: The test statistic (KS D, chi-squared, or MMD squared).
        p_value: Uncorrected.
        p_adjusted: Benjamini-Hochberg corrected over every test of the report.
        psi: Population stability index of the binned distributions (``None`` for ``mmd``).
        js: Jensen-Shannon distance of the binned distributions (``None`` for ``mmd``).
    """

    feature: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float = 1.0
    psi: float | None = None
    js: float | None = None

    def to_dict(self, alpha: float) -> dict[str, Any]:
        """The JSON form, with ``drift`` at level ``alpha``."""
        return {
            "feature": self.feature,
            "test": self.test,
            "statistic": round(self.statistic, 6),
            "p_value": float(f"{self.p_value:.4g}"),
            "p_adjusted": float(f"{self.p_adjusted:.4g}"),
            "psi": None if self.psi is None else round(self.psi, 5),
            "js": None if self.js is None else round(self.js, 5),
            "drift": self.p_adjusted < alpha,
        }


@dataclass(frozen=True)
class DriftReport:
    """The verdict and every test behind it.

    Attributes:
        drift: Whether any corrected p-value is below ``alpha``.
        alpha: The level (false-discovery rate of the correction).
        tests: One per feature tested, then the embedding test.
        sizes: ``(reference images, current images)``.
        skipped: Features not tested (too few known values), with why.
    """

    drift: bool
    alpha: float
    tests: tuple[FeatureTest, ...]
    sizes: tuple[int, int]
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: top-level ``drift``, then the per-feature statistics."""
        return {
            "drift": self.drift,
            "alpha": self.alpha,
            "correction": "benjamini-hochberg",
            "reference_images": self.sizes[0],
            "current_images": self.sizes[1],
            "drifted_features": [t.feature for t in self.tests if t.p_adjusted < self.alpha],
            "features": [test.to_dict(self.alpha) for test in self.tests],
            "skipped": self.skipped,
        }


def compare_tables(
    reference: FeatureTable,
    current: FeatureTable,
    *,
    alpha: float = 0.05,
    permutations: int = 500,
    seed: int = 0,
) -> DriftReport:
    """Test every feature the two tables share, correct, and decide.

    Raises:
        InputError: Either table has fewer than 2 images.
    """
    if len(reference) < 2 or len(current) < 2:
        raise InputError(
            "drift", f"{len(reference)} and {len(current)} images", "give at least 2 in each set"
        )
    tests: list[FeatureTest] = []
    skipped: dict[str, str] = {}
    for name in sorted(set(reference.continuous) & set(current.continuous)):
        found = _continuous_test(name, reference.continuous[name], current.continuous[name])
        if isinstance(found, str):
            skipped[name] = found
        else:
            tests.append(found)
    for name in sorted(set(reference.categorical) & set(current.categorical)):
        tests.append(
            _categorical_test(name, reference.categorical[name], current.categorical[name])
        )
    if reference.embedding.shape[1] and reference.embedding.shape[1] == current.embedding.shape[1]:
        # PCA fitted on both sets together: a projection fitted on one side alone fits that
        # side better and breaks the permutation test's exchangeability.
        pooled = np.concatenate([reference.embedding, current.embedding])
        projection = DistanceModel.fit_projection(pooled, EMBEDDING_DIMENSIONS)
        reduced = projection.project(reference.embedding), projection.project(current.embedding)
        statistic, p_value = mmd_test(*reduced, permutations, seed)
        tests.append(FeatureTest("embedding", "mmd", statistic, p_value))
    adjusted = false_discovery_control([test.p_value for test in tests], method="bh")
    tests = [_with_adjusted(test, float(p)) for test, p in zip(tests, adjusted, strict=True)]
    drift = any(test.p_adjusted < alpha for test in tests)
    return DriftReport(drift, alpha, tuple(tests), (len(reference), len(current)), skipped)


def mmd_test(
    x: FloatArray, y: FloatArray, permutations: int = 500, seed: int = 0
) -> tuple[float, float]:
    """Squared MMD of two samples (Gaussian kernel, median-distance bandwidth) and its
    permutation p-value ``(1 + #{permuted >= observed}) / (1 + permutations)``."""
    pooled = np.concatenate([x, y]).astype(np.float64)
    distances = cdist(pooled, pooled, "sqeuclidean")
    bandwidth = float(np.median(distances[np.triu_indices(len(pooled), 1)])) or 1.0
    kernel = np.exp(-distances / bandwidth)
    rng = np.random.default_rng(seed)
    observed = _mmd2(kernel, np.arange(len(pooled)) < len(x))
    count = 0
    for _ in range(permutations):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[rng.permutation(len(pooled))[: len(x)]] = True
        count += _mmd2(kernel, mask) >= observed
    return observed, (1 + count) / (1 + permutations)


def _mmd2(kernel: FloatArray, mask: NDArray[np.bool_]) -> float:
    """Unbiased squared MMD of the rows in ``mask`` against the others."""
    a, b = kernel[np.ix_(mask, mask)], kernel[np.ix_(~mask, ~mask)]
    n, m = len(a), len(b)
    within_a = (a.sum() - np.trace(a)) / (n * (n - 1))
    within_b = (b.sum() - np.trace(b)) / (m * (m - 1))
    return float(within_a + within_b - 2 * kernel[np.ix_(mask, ~mask)].mean())


def _continuous_test(name: str, reference: FloatArray, current: FloatArray) -> FeatureTest | str:
    ref, cur = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(ref) < 2 or len(cur) < 2:
        return "fewer than 2 known values in a set"
    result = ks_2samp(ref, cur)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    psi, js = _psi_js(expected, actual)
    return FeatureTest(name, "ks", float(result.statistic), float(result.pvalue), psi=psi, js=js)


def _categorical_test(name: str, reference: list[str], current: list[str]) -> FeatureTest:
    categories = sorted(set(reference) | set(current))
    expected = np.array([reference.count(c) for c in categories], dtype=np.float64)
    actual = np.array([current.count(c) for c in categories], dtype=np.float64)
    psi, js = _psi_js(expected, actual)
    if len(categories) < 2:
        return FeatureTest(name, "chi2", 0.0, 1.0, psi=psi, js=js)
    result = chi2_contingency(np.stack([expected, actual]))
    return FeatureTest(name, "chi2", float(result.statistic), float(result.pvalue), psi=psi, js=js)


def _psi_js(expected: NDArray[Any], actual: NDArray[Any]) -> tuple[float, float]:
    p = expected / max(expected.sum(), 1) + _EPSILON
    q = actual / max(actual.sum(), 1) + _EPSILON
    p, q = p / p.sum(), q / q.sum()
    psi = float(np.sum((q - p) * np.log(q / p)))
    return psi, float(jensenshannon(p, q, base=2))


def _with_adjusted(test: FeatureTest, p_adjusted: float) -> FeatureTest:
    return FeatureTest(
        test.feature, test.test, test.statistic, test.p_value, p_adjusted, test.psi, test.js
    )

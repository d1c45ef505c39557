"""The statistics behind monitoring: distance thresholds and drift tests, on drawn samples."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.errors import ConfigError, InputError
from insightray.monitoring.drift import compare_tables, mmd_test
from insightray.monitoring.features import FeatureTable
from insightray.monitoring.scoring import DistanceModel


def _table(rng: np.random.Generator, n: int, shift: float = 0.0, mix: float = 0.5) -> FeatureTable:
    return FeatureTable(
        {"x": rng.normal(shift, 1.0, n), "y": rng.uniform(0, 1, n), "unknown": np.full(n, np.nan)},
        {"modality": list(np.where(rng.uniform(size=n) < mix, "CR", "DX"))},
        rng.normal(shift, 1.0, (n, 4)),
    )


def test_the_threshold_holds_its_false_alarm_rate_on_new_samples() -> None:
    rng = np.random.default_rng(0)
    covariance = np.diag([5.0, 3.0, 1.0, 0.5, 0.1, 0.1])
    model = DistanceModel.fit(rng.multivariate_normal(np.zeros(6), covariance, 1000), 3, 0.05)
    fresh = rng.multivariate_normal(np.zeros(6), covariance, 5000)
    rate = float(np.mean(model.score(fresh) > 1.0))
    assert 0.02 < rate < 0.09, rate
    shifted = rng.multivariate_normal(np.full(6, 3.0), covariance, 200)
    assert np.mean(model.score(shifted) > 1.0) > 0.95


def test_a_distance_model_survives_json_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(1)
    model = DistanceModel.fit(rng.normal(size=(100, 5)), 2, 0.01)
    again = DistanceModel.from_dict(model.to_dict())
    rows = rng.normal(size=(10, 5))
    assert np.allclose(again.score(rows), model.score(rows), rtol=1e-5)
    with pytest.raises(ConfigError):
        DistanceModel.fit(rng.normal(size=(6, 5)), 2, 0.01)  # too few rows for 5 folds
    with pytest.raises(ConfigError):
        DistanceModel.fit(rng.normal(size=(100, 5)), 2, 0.7)
    with pytest.raises(ConfigError):
        DistanceModel.from_dict({"mean": [0.0]})


def test_same_distribution_is_not_drift_and_a_shift_is_named() -> None:
    rng = np.random.default_rng(2)
    same = compare_tables(_table(rng, 300), _table(rng, 300), permutations=100)
    assert not same.drift
    assert "unknown" in same.skipped
    shifted = compare_tables(_table(rng, 300), _table(rng, 300, shift=0.5), permutations=100)
    assert shifted.drift
    drifted = set(shifted.to_dict()["drifted_features"])
    assert {"x", "embedding"} <= drifted and "y" not in drifted
    tests = {test.feature: test for test in shifted.tests}
    assert tests["x"].test == "ks" and tests["embedding"].test == "mmd"
    assert tests["x"].psi is not None and tests["x"].psi > 0.05
    assert all(t.p_adjusted >= t.p_value for t in shifted.tests)


def test_a_categorical_shift_is_found_by_chi_squared() -> None:
    rng = np.random.default_rng(3)
    report = compare_tables(_table(rng, 400, mix=0.5), _table(rng, 400, mix=0.8), permutations=50)
    modality = next(t for t in report.tests if t.feature == "modality")
    assert modality.test == "chi2" and modality.p_adjusted < 0.05
    assert modality.js is not None and 0 < modality.js < 1


def test_mmd_permutation_p_value() -> None:
    rng = np.random.default_rng(4)
    _, p_same = mmd_test(rng.normal(size=(80, 3)), rng.normal(size=(80, 3)), 200)
    _, p_diff = mmd_test(rng.normal(size=(80, 3)), rng.normal(0.8, 1, (80, 3)), 200)
    assert p_same > 0.05 and p_diff < 0.01


def test_drift_needs_two_images_a_side() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(InputError):
        compare_tables(_table(rng, 1), _table(rng, 10))


def test_group_folds_keep_augmented_copies_out_of_their_own_threshold() -> None:
    rng = np.random.default_rng(6)
    sources = rng.normal(size=(60, 6))
    rows = np.repeat(sources, 5, axis=0) + rng.normal(scale=0.05, size=(300, 6))
    groups = [str(i) for i in np.repeat(np.arange(60), 5)]
    plain = DistanceModel.fit(rows, 3, 0.05)
    grouped = DistanceModel.fit(rows, 3, 0.05, groups=groups)
    assert grouped.threshold > plain.threshold
    fresh = rng.normal(size=(3000, 6))
    assert np.mean(grouped.score(fresh) > 1) < np.mean(plain.score(fresh) > 1)

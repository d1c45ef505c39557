"""ROC AUC, its bootstrap interval, operating points and calibration, against scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightray.errors import ConfigError
from insightray.training.metrics.calibration import (
    expected_calibration_error,
    plot_reliability_diagram,
    reliability_bins,
)
from insightray.training.metrics.roc import (
    bootstrap_auc_ci,
    bootstrap_auc_difference,
    point_at_sensitivity,
    point_at_threshold,
    roc_auc,
    roc_curve,
    youden_point,
)


def _data(seed: int, size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size)
    scores = np.clip(rng.normal(0.4 + 0.25 * labels, 0.2), 0, 1).round(2)  # many ties
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_curve_match_scikit_learn(seed: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    labels, scores = _data(seed)
    assert roc_auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores))
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores, drop_intermediate=False)
    curve = roc_curve(labels, scores)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_allclose(curve.thresholds[1:], thresholds[1:])


def test_auc_hand_cases() -> None:
    assert roc_auc([0, 1], [0.2, 0.8]) == 1.0
    assert roc_auc([0, 1], [0.8, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    with pytest.raises(ConfigError, match="one class"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ConfigError):
        roc_auc([0, 2], [0.2, 0.3])
    with pytest.raises(ConfigError):
        roc_auc([0, 1], [0.2, float("nan")])


def test_operating_points_hand_case() -> None:
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    youden = youden_point(labels, scores)
    assert (youden.threshold, youden.sensitivity, youden.specificity) == (0.7, 0.75, 1.0)
    fixed = point_at_sensitivity(labels, scores, 0.9)
    assert (fixed.threshold, fixed.sensitivity, fixed.specificity) == (0.4, 1.0, 0.75)
    at = point_at_threshold(labels, scores, 0.5)
    assert (at.sensitivity, at.specificity) == (0.75, 0.75)


def test_youden_matches_a_brute_force_search() -> None:
    labels, scores = _data(4)
    best = max(
        (point_at_threshold(labels, scores, t) for t in np.unique(scores)),
        key=lambda p: (p.sensitivity + p.specificity, p.threshold),
    )
    found = youden_point(labels, scores)
    assert found.sensitivity + found.specificity == pytest.approx(
        best.sensitivity + best.specificity
    )
    fixed = point_at_sensitivity(labels, scores, 0.9)
    assert fixed.sensitivity >= 0.9
    higher = [t for t in np.unique(scores) if t > fixed.threshold]
    assert all(point_at_threshold(labels, scores, t).sensitivity < 0.9 for t in higher)


def test_bootstrap_interval_covers_the_estimate_and_shrinks_with_data() -> None:
    small_labels, small_scores = _data(5, 80)
    big_labels, big_scores = _data(5, 2000)
    low, high = bootstrap_auc_ci(small_labels, small_scores, resamples=500)
    assert low < roc_auc(small_labels, small_scores) < high
    big_low, big_high = bootstrap_auc_ci(big_labels, big_scores, resamples=300)
    assert big_high - big_low < (high - low) / 2
    assert bootstrap_auc_ci(small_labels, small_scores, resamples=200, seed=1) == (
        bootstrap_auc_ci(small_labels, small_scores, resamples=200, seed=1)
    )


def test_group_bootstrap_is_wider_when_copies_are_correlated() -> None:
    labels, scores = _data(6, 60)
    copies_labels = np.repeat(labels, 5)
    copies_scores = np.repeat(scores, 5)
    groups = np.repeat(np.arange(60), 5).astype(str)
    naive = bootstrap_auc_ci(copies_labels, copies_scores, resamples=400)
    grouped = bootstrap_auc_ci(copies_labels, copies_scores, resamples=400, groups=groups)
    assert (grouped[1] - grouped[0]) > 1.5 * (naive[1] - naive[0])


def test_ece_hand_case_and_against_a_direct_sum() -> None:
    assert expected_calibration_error([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3], bins=2) == 0.175
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    labels, scores = _data(7)
    table = reliability_bins(labels, scores, 10)
    assert table.counts.sum() == len(scores)
    direct = 0.0
    for low, high in zip(table.edges[:-1], table.edges[1:], strict=True):
        inside = (scores >= low) & ((scores < high) if high < 1 else (scores <= high))
        if inside.any():
            gap = abs(labels[inside].mean() - scores[inside].mean())
            direct += gap * inside.sum() / len(scores)
    assert expected_calibration_error(labels, scores, 10) == pytest.approx(direct)
    with pytest.raises(ConfigError):
        expected_calibration_error([0, 1], [0.2, 1.5])


def test_reliability_diagram_is_a_png(tmp_path: Path) -> None:
    labels, scores = _data(8)
    target = plot_reliability_diagram(labels, scores, tmp_path / "plots" / "rel.png")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_bootstrap_difference() -> None:
    labels, scores = _data(9, 300)
    noise = np.random.default_rng(9).normal(0, 0.3, scores.size)
    worse = scores + noise
    difference, low, high = bootstrap_auc_difference(labels, scores, worse, resamples=300)
    assert difference == pytest.approx(roc_auc(labels, scores) - roc_auc(labels, worse))
    assert 0 < low < difference < high
    same = bootstrap_auc_difference(labels, scores, scores, resamples=50)
    assert same == (0.0, 0.0, 0.0)

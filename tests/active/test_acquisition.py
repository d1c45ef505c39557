"""Acquisition functions on hand-made outputs: the ambiguous input must come first."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.active import (
    bald_scores,
    entropy_scores,
    k_center_greedy,
    margin_scores,
    random_scores,
)
from insightray.active.detection import box_entropy, box_margin, tta_disagreement
from insightray.engine.detection import Detection
from insightray.errors import ConfigError


def test_entropy_and_margin_rank_the_coin_flip_first() -> None:
    p = np.array([0.97, 0.03, 0.51, 0.8])
    assert int(np.argmax(entropy_scores(p))) == 2
    assert int(np.argmax(margin_scores(p))) == 2
    assert entropy_scores(np.array([0.5]))[0] == pytest.approx(np.log(2))
    assert margin_scores(np.array([0.5, 1.0])) == pytest.approx([1.0, 0.0])


def test_multiclass_probabilities() -> None:
    p = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    assert int(np.argmax(entropy_scores(p))) == 1
    assert margin_scores(p)[1] == pytest.approx(0.95)


def test_bald_prefers_disagreement_over_mere_uncertainty() -> None:
    # Image 0: every pass says 0.5 (uncertain, but the passes agree: no BALD).
    # Image 1: passes flip between confident answers (the weights disagree: high BALD).
    # Image 2: confident and consistent.
    samples = np.array([[0.5, 0.05, 0.02], [0.5, 0.95, 0.03]] * 5)
    scores = bald_scores(samples)
    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    assert int(np.argmax(scores)) == 1
    assert entropy_scores(samples.mean(0))[0] >= entropy_scores(samples.mean(0))[1]


def test_bald_needs_two_passes() -> None:
    with pytest.raises(ConfigError):
        bald_scores(np.array([[0.5, 0.5]]))


def test_k_center_covers_the_far_cluster_before_repeating_the_near_one() -> None:
    rng = np.random.default_rng(0)
    near = rng.normal(0, 0.1, (20, 4))
    far = rng.normal(10, 0.1, (3, 4))
    pool = np.concatenate([near, far])
    picked, gains = k_center_greedy(pool, 2, labelled=near[:5])
    assert picked[0] >= 20  # the first pick is in the unlabelled far cluster
    assert gains[0] > gains[1]
    assert len(set(picked)) == 2


def test_random_is_seeded() -> None:
    assert np.array_equal(random_scores(5, seed=3), random_scores(5, seed=3))
    assert not np.array_equal(random_scores(5, seed=3), random_scores(5, seed=4))


def _box(score: float, x: float = 0.0, class_id: int = 0) -> Detection:
    return Detection(class_id, "c", score, (x, 0.0, x + 10.0, 10.0))


def test_box_scores_rank_the_undecided_box_first() -> None:
    images = [[_box(0.95)], [_box(0.52), _box(0.9)], []]
    assert int(np.argmax([box_entropy(boxes) for boxes in images])) == 1
    assert int(np.argmax([box_margin(boxes) for boxes in images])) == 1
    assert box_entropy([]) == 0.0


def test_tta_disagreement() -> None:
    same = [_box(0.8), _box(0.6, x=50)]
    assert tta_disagreement(same, same) == pytest.approx(0.0)
    assert tta_disagreement([_box(0.8)], [_box(0.8, x=100)]) == pytest.approx(1.0)
    assert tta_disagreement([_box(0.8)], [_box(0.8, class_id=1)]) == pytest.approx(1.0)
    half = tta_disagreement([_box(0.8)], [_box(0.8, x=5)])
    assert 0.4 < half < 0.8
    assert tta_disagreement([], []) == 0.0

"""Acquisition functions on hand-made outputs: the ambiguous input must come first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insightray.active import (
    badge_select,
    bald_scores,
    entropy_scores,
    k_center_greedy,
    margin_scores,
    random_scores,
)
from insightray.active.acquisition import gradient_embeddings
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


def test_gradient_embeddings_are_the_last_layer_gradient_at_the_predicted_label() -> None:
    torch.manual_seed(0)
    z = torch.randn(5, 6)
    head = torch.nn.Linear(6, 3, bias=False)
    logits = head(z)
    predicted = logits.argmax(1)
    wanted = []
    for i in range(5):  # autograd, one image at a time
        head.zero_grad()
        torch.nn.functional.cross_entropy(head(z[i : i + 1]), predicted[i : i + 1]).backward()
        assert head.weight.grad is not None
        wanted.append(head.weight.grad.flatten().numpy().copy())
    p = logits.softmax(1).detach().numpy()
    assert gradient_embeddings(p, z.numpy()) == pytest.approx(np.array(wanted), abs=1e-6)
    binary = gradient_embeddings(np.array([0.9, 0.4]), np.ones((2, 1)))  # a one-logit model
    assert binary == pytest.approx(np.array([[0.1, -0.1], [-0.4, 0.4]]))


def test_badge_picks_uncertain_and_diverse_images() -> None:
    # Cluster A: ten near-copies of the most uncertain image; B: ten near-copies of another
    # uncertain one, seen differently; C: ten confident images. Entropy's top two are two
    # copies from A; BADGE starts in A, never takes a second copy while others are left, and
    # goes on to the uncertain B more often than to the confident C.
    rng = np.random.default_rng(0)
    directions = np.eye(3)
    z = np.concatenate([directions[k] + rng.normal(0, 0.01, (10, 3)) for k in range(3)])
    p = np.concatenate([np.full(10, 0.55), np.full(10, 0.35), np.full(10, 0.99)])
    assert set(np.argsort(-entropy_scores(p))[:2]) <= set(range(10))
    clusters = []
    for seed in range(200):
        picked, gains = badge_select(p, z, 2, seed=seed)
        assert picked[0] < 10 and len(set(picked)) == 2
        assert gains[0] == pytest.approx((gradient_embeddings(p, z)[picked[0]] ** 2).sum())
        clusters.append(picked[1] // 10)
    assert 0 not in clusters  # no near-copy of the first pick
    assert clusters.count(1) > clusters.count(2)  # uncertainty weighs: B before C
    assert badge_select(p, z, 40)[0] == badge_select(p, z, 40)[0]  # seeded; all 30 once
    assert sorted(badge_select(p, z, 40)[0]) == list(range(30))


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

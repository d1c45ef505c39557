"""Tests of AutoAnchor: best possible recall, anchor fitting and the anchor check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insightray.training.detection.autoanchor import (
    anchors_above_threshold,
    best_possible_recall,
    check_anchors,
    fit_anchors,
)

DEFAULT_ANCHORS = torch.tensor(
    [
        [[10, 13], [16, 30], [33, 23]],
        [[30, 61], [62, 45], [59, 119]],
        [[116, 90], [156, 198], [373, 326]],
    ],
    dtype=torch.float32,
)


def boxes_near_default_anchors(count: int = 900, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = DEFAULT_ANCHORS.reshape(-1, 2).repeat(count // 9, 1)
    jitter = torch.empty_like(base).uniform_(0.7, 1.4, generator=gen)
    return base * jitter


def tiny_boxes(count: int = 600, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.empty(count, 2).uniform_(2.0, 4.0, generator=gen)


def test_bpr_of_default_anchors_on_matching_boxes_is_one() -> None:
    assert best_possible_recall(DEFAULT_ANCHORS, boxes_near_default_anchors()) == 1.0


def test_metrics_on_hand_made_boxes() -> None:
    anchors = torch.tensor([[10.0, 10.0], [30.0, 30.0]])
    boxes = torch.tensor([[20.0, 20.0], [100.0, 100.0], [1000.0, 1000.0], [12.0, 50.0]])
    # 20: both fit; 100: only 30 (ratio 3.3); 1000: none; 12x50: only 30 (2.5, 1.67)
    assert best_possible_recall(anchors, boxes) == pytest.approx(0.75)
    assert anchors_above_threshold(anchors, boxes) == pytest.approx((2 + 1 + 0 + 1) / 4)
    # a looser threshold lets 10 reach 12x50 (ratio 5) too
    assert anchors_above_threshold(anchors, boxes, threshold=6.0) == pytest.approx(5 / 4)
    assert best_possible_recall(anchors, torch.zeros(0, 2)) == 0.0


def test_tiny_boxes_trigger_a_refit_with_higher_bpr() -> None:
    boxes = tiny_boxes()
    before = best_possible_recall(DEFAULT_ANCHORS, boxes)
    assert before < 0.98
    result = check_anchors(DEFAULT_ANCHORS, boxes, img_size=640, generations=200, seed=0)
    assert result.replaced
    assert result.bpr_before == pytest.approx(before)
    assert result.bpr_after > result.bpr_before
    assert result.bpr_after == pytest.approx(best_possible_recall(result.anchors, boxes))
    assert result.anchors.shape == (3, 3, 2)
    assert result.anchors.dtype == DEFAULT_ANCHORS.dtype


def test_good_anchors_are_kept() -> None:
    result = check_anchors(DEFAULT_ANCHORS, boxes_near_default_anchors(), generations=10)
    assert not result.replaced
    assert result.anchors is DEFAULT_ANCHORS
    assert result.bpr_before == result.bpr_after == 1.0


def test_too_few_boxes_keep_the_anchors() -> None:
    result = check_anchors(DEFAULT_ANCHORS, torch.tensor([[3.0, 3.0], [2.5, 3.5]]))
    assert not result.replaced
    assert result.anchors is DEFAULT_ANCHORS


def test_fit_is_seeded_and_sorted_by_area() -> None:
    boxes = boxes_near_default_anchors(450)
    first = fit_anchors(boxes, n=9, img_size=640, generations=100, seed=3)
    second = fit_anchors(boxes.numpy(), n=9, img_size=640, generations=100, seed=3)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    areas = first.prod(dim=1)
    assert torch.all(areas[1:] >= areas[:-1])
    assert first.shape == (9, 2) and first.dtype == torch.float32
    assert best_possible_recall(first, boxes) > 0.98


def test_evolution_does_not_lower_fitness() -> None:
    rng = np.random.default_rng(0)
    boxes = rng.lognormal(mean=3.5, sigma=0.8, size=(500, 2))
    kmeans_only = fit_anchors(boxes, n=6, generations=0, seed=1)
    evolved = fit_anchors(boxes, n=6, generations=300, seed=1)

    def fitness(anchors: torch.Tensor) -> float:
        wh = torch.as_tensor(boxes)
        ratio = wh[:, None] / anchors.double()[None]
        best = torch.minimum(ratio, 1 / ratio).amin(dim=2).amax(dim=1)
        return float((best * (best > 0.25)).mean())

    assert fitness(evolved) >= fitness(kmeans_only) - 1e-6
    assert evolved.min() >= 2.0 and evolved.max() <= 640.0

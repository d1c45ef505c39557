"""Our mAP matches the reference YOLOv5's ``ap_per_class`` on identical boxes (to 0.005).

The reference lives only in the benchmark venv (``benchmarks/setup_reference.sh``, AGPL-3.0,
never a product dependency); without it the test skips and says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_map_parity.py"
_spec = importlib.util.spec_from_file_location("bench_map_parity", BENCH)
assert _spec is not None and _spec.loader is not None
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)


def _synthetic_images(count: int, seed: int) -> list:
    """Ground truth and imperfect predictions: shifted hits, misses, false positives, ties."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        gt_n = int(rng.integers(0, 4))
        xy = rng.uniform(0, 400, (gt_n, 2))
        gt = np.column_stack([xy, xy + rng.uniform(20, 120, (gt_n, 2))])
        gt_cls = rng.integers(0, 2, gt_n)
        keep = rng.random(gt_n) < 0.8  # some objects are missed
        shift = rng.normal(0, 8, (int(keep.sum()), 4))
        pred = [gt[keep] + shift]
        cls = [np.where(rng.random(int(keep.sum())) < 0.9, gt_cls[keep], 1 - gt_cls[keep])]
        fp_n = int(rng.integers(0, 4))
        fp_xy = rng.uniform(0, 400, (fp_n, 2))
        pred.append(np.column_stack([fp_xy, fp_xy + rng.uniform(10, 80, (fp_n, 2))]))
        cls.append(rng.integers(0, 2, fp_n))
        boxes = np.concatenate(pred)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        hit_scores = rng.uniform(0.2, 1.0, int(keep.sum()))  # hits tend to score higher
        scores = np.round(np.concatenate([hit_scores, rng.uniform(0.01, 0.7, fp_n)]), 2)  # ties
        images.append((gt, gt_cls, boxes, scores, np.concatenate(cls)))
    return images


def test_our_map_matches_the_reference_ap_per_class() -> None:
    python = parity.reference_python()
    if python is None:
        pytest.skip("no benchmark venv with yolov5 (run benchmarks/setup_reference.sh)")
    names = ["ActiveTuberculosis", "ObsoletePulmonaryTuberculosis"]
    images = _synthetic_images(200, seed=0)
    ours = parity.our_map(images, names)
    reference = parity.reference_map(images, names, python)
    print(f"ours {ours}\nreference {reference}")
    assert 0.3 < ours["map50"] < 0.95  # a metric with room to disagree, not 0 or 1
    assert ours["map50"] == pytest.approx(reference["map50"], abs=0.005)
    assert ours["map50_95"] == pytest.approx(reference["map50_95"], abs=0.005)
    for name in names:
        assert ours["ap50"][name] == pytest.approx(reference["ap50"][name], abs=0.01)

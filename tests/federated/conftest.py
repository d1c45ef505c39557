"""Shared federated fixtures: tiny real-data sites for tests that start Flower processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from insightray.federated.sites import assign_sites, write_sites
from insightray.training.fracture.dataset import load_fracture_items

SITES = 3


@pytest.fixture(scope="module")
def tiny_sites(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three sites of a handful of real images each (by source group), plus a test folder."""
    source = shared_data / "fracture" / "bone_fracture_roboflow"
    if not source.is_dir():
        pytest.skip("bone_fracture_roboflow not in the shared data")
    items = load_fracture_items(source)
    wanted: dict[int, list[str]] = {0: [], 1: []}
    for item in items:
        bucket = wanted[item.label]
        if item.group not in bucket and len(bucket) < 8:
            bucket.append(item.group)
    keep = set(wanted[0] + wanted[1])
    chosen, seen = [], set()
    for item in items:  # one image per chosen group keeps the sites tiny
        if item.group in keep and item.group not in seen:
            chosen.append(item)
            seen.add(item.group)
    plan = assign_sites(chosen, SITES, label_skew=0.0, size_skew=0.0, test_fraction=0.2, seed=0)
    root = tmp_path_factory.mktemp("federation") / "sites"
    write_sites(plan, root)
    return root

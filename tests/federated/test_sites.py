"""Site splits: by source group, non-IID, nothing shared between sites or with the test set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from insightray.errors import ConfigError
from insightray.federated.sites import assign_sites, site_folders, write_sites
from insightray.training.fracture.dataset import FractureItem, load_fracture_items


def _items(groups: int = 60, copies: int = 3) -> list[FractureItem]:
    return [
        FractureItem(Path(f"{g}_{k}.png"), int(g % 3 == 0), str(g))
        for g in range(groups)
        for k in range(copies)
    ]


def test_every_group_goes_to_exactly_one_place() -> None:
    items = _items()
    plan = assign_sites(items, 4, label_skew=1.0, size_skew=0.5, seed=1)
    places = Counter([g for site in plan.sites for g in site] + list(plan.test))
    assert set(places) == {item.group for item in items}
    assert set(places.values()) == {1}
    assert sum(len(m) for site in plan.sites for m in site.values()) + sum(
        len(m) for m in plan.test.values()
    ) == len(items)


def test_skews_change_sizes_and_fracture_rates() -> None:
    items = _items(300, 1)
    even = assign_sites(items, 3, label_skew=0.0, size_skew=0.0, seed=0)
    sizes = [len(site) for site in even.sites]
    assert max(sizes) - min(sizes) <= 2
    skewed = assign_sites(items, 3, label_skew=0.0, size_skew=1.0, seed=0)
    sizes = [len(site) for site in skewed.sites]
    assert sizes[0] > 1.5 * sizes[1] > 1.5 * 0.9 * sizes[2]
    rates = []
    for site in assign_sites(items, 3, label_skew=2.0, size_skew=0.0, seed=3).sites:
        labels = [m[0].label for m in site.values()]
        rates.append(sum(labels) / len(labels))
    assert max(rates) - min(rates) > 0.1


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        assign_sites(_items(), 1)
    with pytest.raises(ConfigError):
        assign_sites(_items(6, 1), 5)


def test_written_sites_on_the_real_data_share_nothing(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "fracture" / "bone_fracture_roboflow"
    if not source.is_dir():
        pytest.skip("bone_fracture_roboflow not in the shared data")
    items = load_fracture_items(source)
    write_sites(assign_sites(items, 3, seed=0), tmp_path / "split")
    folders = [*site_folders(tmp_path / "split"), tmp_path / "split" / "test"]
    assert len(folders) == 4
    groups: list[set[str]] = []
    names: list[set[str]] = []
    total = 0
    for folder in folders:
        site_items = load_fracture_items(folder)
        total += len(site_items)
        groups.append({item.group for item in site_items})
        names.append({item.path.name for item in site_items})
        assert all(item.path.parent.parent == folder for item in site_items)
    assert total == len(items)
    for i in range(len(folders)):
        for j in range(i + 1, len(folders)):
            assert not groups[i] & groups[j]
            assert not names[i] & names[j]
    with pytest.raises(ConfigError):
        write_sites(assign_sites(items, 3, seed=0), tmp_path / "split")

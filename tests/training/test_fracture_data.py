"""Fracture data: the three layouts, DICOM input and the group-aware split."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.imaging import write_png
from insightray.training.fracture.dataset import (
    FractureItem,
    class_counts,
    load_fracture_items,
    split_by_group,
)


@pytest.fixture(scope="module")
def roboflow(shared_data: Path) -> Path:
    root = shared_data / "fracture" / "bone_fracture_roboflow"
    if not (root / "images.csv").is_file():
        pytest.skip("bone_fracture_roboflow not found")
    return root


def _png(path: Path, value: float = 0.5) -> Path:
    return write_png(np.full((20, 30), value, np.float32), path)


def test_roboflow_index_is_read_with_its_groups(roboflow: Path) -> None:
    items = load_fracture_items(roboflow)
    assert len(items) == 938
    assert class_counts(items) == (476, 462)
    assert len({item.group for item in items}) == 217
    assert all(item.path.is_file() for item in items[:20])


def test_no_group_straddles_two_splits(roboflow: Path) -> None:
    items = load_fracture_items(roboflow)
    for seed in (0, 1, 2):
        splits = split_by_group(items, val_fraction=0.15, test_fraction=0.15, seed=seed)
        groups = [{item.group for item in part} for part in (splits.train, splits.val, splits.test)]
        assert not groups[0] & groups[1]
        assert not groups[0] & groups[2]
        assert not groups[1] & groups[2]
        assert len(splits.train) + len(splits.val) + len(splits.test) == len(items)
        for part in (splits.val, splits.test):
            negatives, positives = class_counts(part)
            assert 0.3 < positives / (negatives + positives) < 0.7  # stratified: both classes
            assert 0.10 < len(part) / len(items) < 0.21


def test_split_is_reproducible_and_seeded(roboflow: Path) -> None:
    items = load_fracture_items(roboflow)
    first = split_by_group(items, seed=0)
    assert first == split_by_group(items, seed=0)
    assert first.val != split_by_group(items, seed=1).val


def test_split_stratifies_by_group_kind() -> None:
    items = [
        FractureItem(Path(f"{g}_{k}.png"), label, str(g))
        for g in range(40)
        for k, label in enumerate([0, 1] if g < 20 else [g % 2] * 2)
    ]
    splits = split_by_group(items, val_fraction=0.25, test_fraction=0.25, seed=3)
    for part in (splits.val, splits.test):
        kinds = [len({i.label for i in part if i.group == g}) for g in {i.group for i in part}]
        assert kinds.count(2) == 5  # a quarter of the 20 mixed groups
    with pytest.raises(ConfigError):
        split_by_group(items, val_fraction=0.6, test_fraction=0.5)


def test_path_label_csv_with_names_and_a_dicom(tmp_path: Path, shared_data: Path) -> None:
    dicom = shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm"
    if not dicom.is_file():
        pytest.skip("DICOM sample not found")
    shutil.copy(dicom, tmp_path / "tibia.dcm")
    _png(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\ntibia.dcm,fractured\na.png,normal\n")
    items = load_fracture_items(tmp_path / "labels.csv")
    assert [(i.path.name, i.label, i.group) for i in items] == [
        ("tibia.dcm", 1, "tibia"),
        ("a.png", 0, "a"),
    ]


def test_folder_per_class(tmp_path: Path) -> None:
    _png(tmp_path / "fractured" / "x1.png")
    _png(tmp_path / "fractured" / "deep" / "x2.png")
    _png(tmp_path / "not_fractured" / "y1.png")
    (tmp_path / "README.txt").write_text("ignored")
    items = load_fracture_items(tmp_path)
    assert sorted((i.path.name, i.label) for i in items) == [
        ("x1.png", 1),
        ("x2.png", 1),
        ("y1.png", 0),
    ]
    assert len({i.group for i in items}) == 3


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("path,label\na.png,broken\n", InputError),
        ("file,kind\na.png,1\n", InputError),
        ("path,label\nmissing.png,1\n", InputNotFoundError),
        ("path,label\n", InputNotFoundError),
    ],
)
def test_bad_csv_gives_a_clear_error(tmp_path: Path, content: str, error: type) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(error):
        load_fracture_items(tmp_path / "labels.csv")


def test_folder_without_layout_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "scans" / "a.png")
    with pytest.raises(InputNotFoundError, match="class folders"):
        load_fracture_items(tmp_path)
    with pytest.raises(InputNotFoundError):
        load_fracture_items(tmp_path / "nowhere")

"""Fracture classification data: three layouts in, one list of labelled images out.

:func:`load_fracture_items` reads any of:

- a folder with ``images.csv`` (columns ``image`` and ``fractured``, optionally ``group``;
  image paths relative to the folder), the layout of the shared Roboflow bone-fracture set;
- a CSV file of ``path,label`` (paths relative to the CSV's folder; labels ``0``/``1`` or
  class names such as ``fractured``/``normal``; optional ``group`` column);
- a folder per class (``fractured/``, ``not_fractured/``, ``normal/``...), searched
  recursively.

Files may be DICOM, PNG or JPEG: they are decoded later through :mod:`insightray.imaging`.
Without a ``group`` column every image is its own group.

:func:`split_by_group` makes a stratified, group-aware train/validation/test split: the
Roboflow export holds up to 12 augmented copies of each source image, and copies of one source
must never sit on both sides of a split.

Example:
    >>> items = [FractureItem(Path(f"{g}_{k}.png"), g % 2, str(g)) for g in range(20)
    ...          for k in range(3)]
    >>> splits = split_by_group(items, val_fraction=0.2, test_fraction=0.2, seed=0)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (36, 12, 12)
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.imaging import expand_inputs

__all__ = [
    "FractureItem",
    "FractureSplits",
    "class_counts",
    "load_fracture_items",
    "split_by_group",
]

INDEX_FILE = "images.csv"
POSITIVE_NAMES = frozenset({"1", "fractured", "fracture", "positive", "abnormal", "yes", "true"})
NEGATIVE_NAMES = frozenset(
    {
        "0",
        "not_fractured",
        "not fractured",
        "non_fractured",
        "nonfractured",
        "unfractured",
        "normal",
        "negative",
        "no",
        "false",
    }
)


@dataclass(frozen=True)
class FractureItem:
    """One labelled image.

    Attributes:
        path: The image file (DICOM, PNG or JPEG).
        label: 1 fractured, 0 not fractured.
        group: Source image the file derives from; copies share a group.
    """

    path: Path
    label: int
    group: str


@dataclass(frozen=True)
class FractureSplits:
    """A group-aware split: no group appears in two of the three lists."""

    train: list[FractureItem]
    val: list[FractureItem]
    test: list[FractureItem]


def class_counts(items: Iterable[FractureItem]) -> tuple[int, int]:
    """``(negatives, positives)`` among ``items``."""
    labels = [item.label for item in items]
    return labels.count(0), labels.count(1)


def load_fracture_items(source: str | Path) -> list[FractureItem]:
    """Read labelled images from a folder or CSV in one of the layouts of the module docstring.

    Raises:
        InputNotFoundError: The path does not exist or holds no images.
        InputError: A CSV lacks the needed columns or holds an unknown label.
    """
    path = Path(source)
    if path.is_file():
        return _read_csv(path, ("path", "image"), ("label", "fractured"))
    if not path.is_dir():
        raise InputNotFoundError(str(path), "the path does not exist", "give a folder or a CSV")
    if (path / INDEX_FILE).is_file():
        return _read_csv(path / INDEX_FILE, ("image", "path"), ("fractured", "label"))
    return _read_class_folders(path)


def _parse_label(raw: str, subject: str) -> int:
    name = raw.strip().lower()
    if name in POSITIVE_NAMES:
        return 1
    if name in NEGATIVE_NAMES:
        return 0
    raise InputError(
        subject,
        f"unknown label {raw.strip()!r}",
        "use 1/0 or fractured/not_fractured (normal, negative... are accepted too)",
    )


def _read_csv(
    csv_path: Path, path_columns: Sequence[str], label_columns: Sequence[str]
) -> list[FractureItem]:
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        path_column = next((c for c in path_columns if c in header), None)
        label_column = next((c for c in label_columns if c in header), None)
        if path_column is None or label_column is None:
            raise InputError(
                str(csv_path),
                f"the columns are {header}, without an image path and a label column",
                f"name them {path_columns[0]} and {label_columns[0]}",
            )
        items = []
        for line, row in enumerate(reader, start=2):
            row = {str(k).strip(): (v or "") for k, v in row.items()}
            relative = row[path_column].strip()
            if not relative:
                continue
            image = Path(relative)
            image = image if image.is_absolute() else csv_path.parent / image
            label = _parse_label(row[label_column], f"{csv_path}:{line}")
            group = row.get("group", "").strip() or image.stem
            items.append(FractureItem(image, label, group))
    if not items:
        raise InputNotFoundError(str(csv_path), "the CSV lists no images", "add rows")
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        raise InputNotFoundError(
            str(missing[0]),
            f"{len(missing)} image(s) listed in {csv_path.name} do not exist",
            "fix the paths (they are relative to the CSV's folder)",
        )
    return items


def _read_class_folders(root: Path) -> list[FractureItem]:
    items: list[FractureItem] = []
    unknown: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = _parse_label(folder.name, str(folder))
        except InputError:
            unknown.append(folder.name)
            continue
        for file in expand_inputs([folder]):
            relative = file.relative_to(root).with_suffix("")
            items.append(FractureItem(file, label, relative.as_posix()))
    if not items:
        hint = f"found folders {unknown}; " if unknown else ""
        raise InputNotFoundError(
            str(root),
            "no images.csv and no class folders",
            f"{hint}add images.csv (image,fractured) or folders fractured/ and not_fractured/",
        )
    return items


def split_by_group(
    items: Sequence[FractureItem],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> FractureSplits:
    """Split groups, not images, into train/validation/test, stratified by group label.

    Each group is classed by its images' labels (all negative, mixed, all positive); within
    each class the groups are shuffled with ``seed`` and dealt out in proportion to the
    fractions, so every split gets its share of each kind of group. (scikit-learn's
    ``StratifiedGroupKFold`` does k folds, not a three-way split by fractions, and is not a
    dependency of the package.)

    Raises:
        ConfigError: The fractions are outside ``[0, 1)`` or leave nothing to train on.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(name, f"{value} is outside [0, 1)", "use e.g. 0.15")
    if val_fraction + test_fraction >= 1:
        raise ConfigError("split", "validation and test take every image", "use smaller ones")
    members: dict[str, list[FractureItem]] = defaultdict(list)
    for item in items:
        members[item.group].append(item)
    strata: dict[int, list[str]] = defaultdict(list)
    for group, group_items in sorted(members.items()):
        positives = sum(item.label for item in group_items)
        kind = 0 if positives == 0 else 2 if positives == len(group_items) else 1
        strata[kind].append(group)
    rng = np.random.default_rng(seed)
    assigned: dict[str, list[FractureItem]] = {"train": [], "val": [], "test": []}
    for kind in sorted(strata):
        groups = list(strata[kind])
        rng.shuffle(groups)
        n_test = round(len(groups) * test_fraction)
        n_val = round(len(groups) * val_fraction)
        for index, group in enumerate(groups):
            split = "test" if index < n_test else "val" if index < n_test + n_val else "train"
            assigned[split].extend(members[group])
    if not assigned["train"]:
        raise ConfigError("split", "no group is left for training", "add data")
    return FractureSplits(assigned["train"], assigned["val"], assigned["test"])

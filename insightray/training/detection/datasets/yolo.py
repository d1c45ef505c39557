"""YOLO-format detection data: a ``data.yaml`` naming the splits and classes, txt labels.

``data.yaml`` keys: ``path`` (the dataset root; relative to the yaml file, default its folder),
``train`` and ``val`` (required) and ``test`` (optional), each a list file of image paths (paths
relative to the list file), a folder of images, an image, or a list of those, relative to the
root; ``names`` (a list, or an ``{id: name}`` mapping with ids 0..n-1); ``nc`` (optional, must
equal the number of names). Any other key is refused, so that a typo cannot go unnoticed.

An image's label file is its path with the last ``images`` folder replaced by ``labels`` and the
suffix by ``.txt``; each line is ``class cx cy w h`` normalised to the image size. A missing or
empty label file makes the image a negative.

Example:
    >>> config = load_data_config("data/tbx11k/data.yaml")  # doctest: +SKIP
    >>> train = load_split(config, "train")  # doctest: +SKIP
    >>> len(train.records), train.class_names  # doctest: +SKIP
    (500, ['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.training.detection.datasets.dataset import (
    IMAGE_SUFFIXES,
    Boxes,
    DetectionDataset,
    DetectionRecord,
    Labels,
    list_images,
    make_record,
    read_image_size,
)

SPLITS = ("train", "val", "test")
_REQUIRED_KEYS = ("train", "val", "names")
_KNOWN_KEYS = frozenset({"path", "train", "val", "test", "names", "nc"})
_LIST_SUFFIX = ".txt"


@dataclass(frozen=True)
class DataConfig:
    """A parsed ``data.yaml``.

    Attributes:
        path: The yaml file itself (named in error messages).
        root: The dataset root every split source is relative to.
        splits: For each configured split (``train``, ``val``, maybe ``test``), its sources:
            list files, image folders or images, as absolute or root-joined paths.
        class_names: Class names; label ``k`` is ``class_names[k]``.
    """

    path: Path
    root: Path
    splits: dict[str, list[Path]]
    class_names: list[str]


def load_data_config(path: str | Path) -> DataConfig:
    """Read and check a YOLO-style ``data.yaml``.

    Args:
        path: The yaml file.

    Returns:
        The root, the sources of each split and the class names.

    Raises:
        InputNotFoundError: The yaml file does not exist.
        ConfigError: The yaml is unreadable, has an unknown key, lacks a required one, or its
            ``names`` / ``nc`` are inconsistent.

    Example:
        >>> config = load_data_config("tbx11k/data.yaml")  # doctest: +SKIP
        >>> config.class_names, sorted(config.splits)  # doctest: +SKIP
        (['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis'], ['train', 'val'])
    """
    path = Path(path)
    subject = str(path)
    if not path.is_file():
        raise InputNotFoundError(
            subject, "the data config does not exist", "give the path of a data.yaml file"
        )
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(
            subject, f"the file is not valid YAML ({type(err).__name__})", "fix its syntax"
        ) from None
    if not isinstance(content, dict):
        raise ConfigError(
            subject,
            "the file is not a mapping of keys to values",
            "write keys path, train, val, test and names",
        )
    unknown = sorted(str(key) for key in content if key not in _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            subject,
            f"unknown key(s) {', '.join(unknown)}",
            "use only path, train, val, test, names and nc",
        )
    missing = [key for key in _REQUIRED_KEYS if content.get(key) is None]
    if missing:
        raise ConfigError(
            subject,
            f"missing key(s) {', '.join(missing)}",
            "add them: train and val name image lists or folders, names the classes",
        )
    root_value = content.get("path")
    if root_value is not None and not isinstance(root_value, str):
        raise ConfigError(subject, "'path' is not a text path", "write the dataset root folder")
    root = path.parent / (root_value or ".")
    splits = {
        split: _split_sources(subject, split, content[split], root)
        for split in SPLITS
        if content.get(split) is not None
    }
    class_names = _class_names(subject, content["names"])
    nc = content.get("nc")
    if nc is not None and (not isinstance(nc, int) or nc != len(class_names)):
        raise ConfigError(
            subject,
            f"nc is {nc} but names lists {len(class_names)} classes",
            "make nc match names, or drop nc",
        )
    return DataConfig(path, root, splits, class_names)


def _split_sources(subject: str, split: str, value: Any, root: Path) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(item, str) and item for item in values):
        raise ConfigError(
            subject,
            f"'{split}' is not a path or a list of paths",
            "give list files, image folders or images, relative to 'path'",
        )
    return [root / item for item in values]


def _class_names(subject: str, names: Any) -> list[str]:
    if isinstance(names, dict):
        ids = sorted(names) if all(isinstance(key, int) for key in names) else None
        if ids != list(range(len(names))):
            raise ConfigError(
                subject,
                "the ids in 'names' are not 0, 1, ..., n-1",
                "number the classes from 0 without gaps",
            )
        names = [names[key] for key in ids]
    if not isinstance(names, list) or not names:
        raise ConfigError(
            subject,
            "'names' is not a non-empty list or {id: name} mapping",
            "list the class names in label order",
        )
    if not all(isinstance(name, str) and name for name in names):
        raise ConfigError(
            subject,
            "every class name must be non-empty text",
            "quote names that YAML reads as numbers or booleans",
        )
    if len(set(names)) != len(names):
        raise ConfigError(subject, "'names' repeats a class name", "give each class one name")
    return list(names)


def load_split(config: DataConfig, split: str) -> DetectionDataset:
    """Load the images of one split with their YOLO labels converted to pixel boxes.

    Image sizes are read from file headers (no decoding), so a 600-image split loads in
    well under a second.

    Args:
        config: From :func:`load_data_config`.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        One record per image (in list-file or sorted folder order), boxes in pixels.

    Raises:
        ConfigError: The split is unknown or not configured, or it holds no images.
        InputNotFoundError: A source or a listed image does not exist.
        InputError: A label line is malformed (the message names the file and line).

    Example:
        >>> val = load_split(load_data_config("tbx11k/data.yaml"), "val")  # doctest: +SKIP
        >>> val.records[0].boxes  # doctest: +SKIP
        array([[381.8, 126.9, 422.0, 171.4]], dtype=float32)
    """
    if split not in SPLITS:
        raise ConfigError(str(split), "unknown split", f"use one of {', '.join(SPLITS)}")
    if split not in config.splits:
        raise ConfigError(
            str(config.path),
            f"no '{split}' split is configured",
            f"add a '{split}' key, or load another split",
        )
    images = [image for source in config.splits[split] for image in _expand_source(source)]
    if not images:
        raise ConfigError(
            str(config.path),
            f"the '{split}' split holds no images",
            "check its list files and folders",
        )
    return DetectionDataset(
        [_record(image, len(config.class_names)) for image in images],
        list(config.class_names),
    )


def _expand_source(source: Path) -> list[Path]:
    if source.is_dir():
        return list_images(source)
    if not source.is_file():
        raise InputNotFoundError(
            str(source),
            "the split source does not exist",
            "fix the path in data.yaml (relative to its 'path')",
        )
    if source.suffix.lower() == _LIST_SUFFIX:
        return _read_list_file(source)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return [source]
    raise InputError(
        str(source),
        "a split source must be a .txt list, a folder or an image",
        "point data.yaml at one of those",
    )


def _read_list_file(list_file: Path) -> list[Path]:
    images = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        image = list_file.parent / entry
        if not image.is_file():
            raise InputNotFoundError(
                f"{list_file}:{number}",
                f"the image {entry} does not exist",
                "fix the path (list paths are relative to the list file)",
            )
        images.append(image)
    return images


def label_path(image_path: Path) -> Path:
    """The YOLO label file of an image: last ``images`` folder -> ``labels``, suffix ``.txt``.

    Raises:
        InputError: No folder of the image path is called ``images``.

    Example:
        >>> label_path(Path("data/images/train/a.png")).as_posix()
        'data/labels/train/a.txt'
    """
    parts = image_path.parts
    folders = [index for index, part in enumerate(parts[:-1]) if part == "images"]
    if not folders:
        raise InputError(
            str(image_path),
            "the path has no 'images' folder, so its label file cannot be found",
            "put images under .../images/ and labels under .../labels/",
        )
    last = folders[-1]
    return Path(*parts[:last], "labels", *parts[last + 1 :]).with_suffix(".txt")


def _record(image_path: Path, num_classes: int) -> DetectionRecord:
    labels_file = label_path(image_path)
    size = read_image_size(image_path)
    if not labels_file.is_file():
        return make_record(image_path, np.zeros((0, 4)), np.zeros(0), size)
    boxes, labels = parse_label_file(labels_file, num_classes, size)
    return make_record(image_path, boxes, labels, size)


def parse_label_file(
    path: Path, num_classes: int, image_size: tuple[int, int]
) -> tuple[Boxes, Labels]:
    """Parse YOLO ``class cx cy w h`` lines into pixel ``x1, y1, x2, y2`` boxes and labels.

    Args:
        path: The label file.
        num_classes: Labels must lie in ``0 .. num_classes - 1``.
        image_size: ``(rows, cols)`` of the image the labels are normalised to.

    Raises:
        InputError: A line is malformed; the message names the file and line.

    Example:
        >>> parse_label_file(Path("labels/a.txt"), 2, (100, 200))  # doctest: +SKIP
        (array([[ 80., 40., 120., 60.]], dtype=float32), array([1]))
    """
    rows, cols = image_size
    boxes: list[list[float]] = []
    labels: list[int] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        label, cx, cy, width, height = _parse_line(f"{path}:{number}", fields, num_classes)
        boxes.append(
            [
                (cx - width / 2) * cols,
                (cy - height / 2) * rows,
                (cx + width / 2) * cols,
                (cy + height / 2) * rows,
            ]
        )
        labels.append(label)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(
            str(path),
            f"the label file cannot be read ({type(err).__name__})",
            "write it as UTF-8 text",
        ) from None


def _parse_line(
    where: str, fields: list[str], num_classes: int
) -> tuple[int, float, float, float, float]:
    if len(fields) != 5:
        raise InputError(
            where,
            f"expected 5 values 'class cx cy w h', found {len(fields)}",
            "fix the line (polygons and keypoints are not supported)",
        )
    try:
        label = int(fields[0])
        cx, cy, width, height = (float(field) for field in fields[1:])
    except ValueError:
        raise InputError(
            where, "the class is not an integer or a coordinate is not a number", "fix the line"
        ) from None
    if not 0 <= label < num_classes:
        raise InputError(
            where,
            f"class {label} is outside 0..{num_classes - 1}",
            "fix the label or the class names in data.yaml",
        )
    if not all(0.0 <= value <= 1.0 for value in (cx, cy, width, height)):  # NaN fails too
        raise InputError(
            where,
            "the box is not normalised to [0, 1]",
            "divide cx and w by the image width, cy and h by its height",
        )
    if width <= 0 or height <= 0:
        raise InputError(where, "the box has zero width or height", "fix or delete the line")
    return label, cx, cy, width, height

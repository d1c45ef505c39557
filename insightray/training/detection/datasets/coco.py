"""COCO-format detection data: one JSON file with ``images``, ``annotations``, ``categories``.

Boxes ``[x, y, w, h]`` become ``x1, y1, x2, y2``; category ids map to contiguous labels in
sorted id order; crowd annotations (``iscrowd: 1``) are skipped; images without annotations are
negatives.

Example:
    >>> train = load_coco("annotations/train.json", "images/train")  # doctest: +SKIP
    >>> train.class_names  # doctest: +SKIP
    ['nodule', 'mass']
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from insightray.errors import InputError, InputNotFoundError
from insightray.training.detection.datasets.dataset import DetectionDataset, make_record


def load_coco(json_path: str | Path, image_root: str | Path) -> DetectionDataset:
    """Load a COCO detection JSON; image paths are ``image_root / file_name``.

    Args:
        json_path: The COCO annotation file.
        image_root: The folder the images' ``file_name`` entries are relative to.

    Returns:
        One record per entry of ``images`` (in file order). ``image_size`` is the JSON's
        ``(height, width)`` when both are given, else ``None``.

    Raises:
        InputNotFoundError: The JSON file does not exist.
        InputError: The JSON is malformed, or an annotation names an unknown image or category
            or has an invalid box (the message names the annotation).

    Example:
        >>> data = load_coco("train.json", "images")  # doctest: +SKIP
        >>> data.records[0].boxes  # doctest: +SKIP
        array([[10., 20., 40., 60.]], dtype=float32)
    """
    json_path, image_root = Path(json_path), Path(image_root)
    subject = str(json_path)
    content = _read_json(json_path)
    categories = sorted(_entries(content, "categories", subject), key=lambda c: _id(c, subject))
    category_ids = [_id(category, subject) for category in categories]
    if len(set(category_ids)) != len(category_ids):
        raise InputError(subject, "two categories share an id", "give each category its own id")
    label_of = {category_id: label for label, category_id in enumerate(category_ids)}
    class_names = [str(category.get("name", category["id"])) for category in categories]

    images = _entries(content, "images", subject)
    boxes: dict[int, list[list[float]]] = {_id(image, subject): [] for image in images}
    if len(boxes) != len(images):
        raise InputError(subject, "two images share an id", "give each image its own id")
    labels: dict[int, list[int]] = {image_id: [] for image_id in boxes}
    for index, annotation in enumerate(_entries(content, "annotations", subject)):
        if annotation.get("iscrowd"):
            continue
        where = f"{subject}: annotation {annotation.get('id', f'#{index}')}"
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        if image_id not in boxes:
            raise InputError(where, f"image_id {image_id} is not in 'images'", "fix the JSON")
        if category_id not in label_of:
            raise InputError(
                where, f"category_id {category_id} is not in 'categories'", "fix the JSON"
            )
        boxes[image_id].append(_xyxy(where, annotation.get("bbox")))
        labels[image_id].append(label_of[category_id])

    records = []
    for image in images:
        image_id = image["id"]
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise InputError(f"{subject}: image {image_id}", "it has no file_name", "fix the JSON")
        records.append(
            make_record(
                image_root / file_name,
                np.array(boxes[image_id], np.float32).reshape(-1, 4),
                np.array(labels[image_id], np.int64),
                _size(image),
            )
        )
    return DetectionDataset(records, class_names)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputNotFoundError(
            str(path), "the COCO annotation file does not exist", "give the path of the JSON file"
        )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(
            str(path),
            f"the file is not valid JSON ({type(err).__name__})",
            "export the annotations again",
        ) from None
    if not isinstance(content, dict):
        raise InputError(str(path), "the JSON is not an object", "give a COCO annotation file")
    return content


def _entries(content: dict[str, Any], key: str, subject: str) -> list[dict[str, Any]]:
    value = content.get(key)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InputError(
            subject,
            f"'{key}' is missing or not a list of objects",
            "give a COCO detection file with images, annotations and categories",
        )
    return value


def _id(entry: dict[str, Any], subject: str) -> int:
    value = entry.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(subject, "an image or category has no integer 'id'", "fix the JSON")
    return value


def _xyxy(where: str, bbox: Any) -> list[float]:
    valid = (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    )
    if not valid or bbox[2] <= 0 or bbox[3] <= 0:
        raise InputError(
            where,
            "'bbox' is not [x, y, width, height] with a positive size",
            "fix or delete the annotation",
        )
    x, y, width, height = (float(v) for v in bbox)
    return [x, y, x + width, y + height]


def _size(image: dict[str, Any]) -> tuple[int, int] | None:
    height, width = image.get("height"), image.get("width")
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    return None

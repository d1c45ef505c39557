"""VinBigData (VinDr-CXR) chest X-ray detection: Kaggle CSV, 3 radiologists per image.

The CSV (``.csv`` or ``.csv.gz``) has one row per radiologist box,
``image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max``, in the pixels of the original
DICOM; class 14 ("No finding") rows carry no box. Each image's boxes are fused across
radiologists with weighted boxes fusion (``ensemble_boxes``; it fuses each class separately),
so the model learns one consensus box per finding; "No finding" images become negatives.

Images may be the DICOMs themselves or resized PNGs: for PNGs the original DICOM size comes from
an ``orig_dims.csv`` (``image_id,dim0_height,dim1_width``; ``dim0,dim1`` is accepted too), and
the boxes are mapped onto the PNG.

Example:
    >>> data = load_vinbigdata("train.csv", "png", orig_dims_csv="dims.csv")  # doctest: +SKIP
    >>> len(data.class_names)  # doctest: +SKIP
    14
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np
from ensemble_boxes import weighted_boxes_fusion

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.imaging import detect_format
from insightray.training.detection.datasets.dataset import (
    Boxes,
    DetectionDataset,
    DetectionRecord,
    Labels,
    make_record,
    read_image_size,
)

#: The Kaggle class names by class_id, used for ids a (sub-sampled) CSV never mentions.
VINBIGDATA_CLASS_NAMES = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD",
    "Infiltration", "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion",
    "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis",
)  # fmt: skip
#: The class_id of "No finding" rows: an image whose radiologists found nothing.
NO_FINDING_ID = len(VINBIGDATA_CLASS_NAMES)

_COLUMNS = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")
_DIM_COLUMNS = (("dim0_height", "dim1_width"), ("dim0", "dim1"))
_GZIP_MAGIC = b"\x1f\x8b"

#: One radiologist's box: (rad_id, class_id, (x_min, y_min, x_max, y_max) in DICOM pixels).
_Annotation = tuple[str, int, tuple[float, float, float, float]]


def load_vinbigdata(
    csv_path: str | Path,
    image_dir: str | Path,
    *,
    orig_dims_csv: str | Path | None = None,
    iou_thr: float = 0.5,
    skip_box_thr: float = 0.0,
    image_ext: Sequence[str] = (".png", ".dicom", ".dcm"),
) -> DetectionDataset:
    """Load VinBigData boxes, fused across radiologists, for the images found in ``image_dir``.

    CSV images without a file in ``image_dir`` are left out (so the full 15,000-image CSV can
    be used with a subset of the images); the loader fails only when none has a file.

    Args:
        csv_path: The Kaggle ``train.csv`` (or a ``.csv.gz``).
        image_dir: The folder holding ``<image_id><ext>`` files.
        orig_dims_csv: Original DICOM sizes, needed when the images are resized PNGs.
        iou_thr: IoU above which boxes of one class are fused.
        skip_box_thr: Boxes with a lower score are dropped before fusion (all scores are 1).
        image_ext: Suffixes tried for each image id, first match wins.

    Returns:
        One record per image (sorted by image id), boxes in the pixels of the image file; the
        14 class names in class_id order.

    Raises:
        InputNotFoundError: A file or the image folder does not exist.
        InputError: A CSV row is malformed (the message names the line), an image is missing
            from ``orig_dims_csv``, or no CSV image has a file in ``image_dir``.
        ConfigError: PNG images but no ``orig_dims_csv``.

    Example:
        >>> data = load_vinbigdata("train_subset_12.csv", "images",
        ...                        orig_dims_csv="orig_dims.csv")  # doctest: +SKIP
        >>> summarize(data)["negatives"]  # doctest: +SKIP
        7
    """
    csv_path, image_dir = Path(csv_path), Path(image_dir)
    annotations, names = _read_annotations(csv_path)
    files = _image_files(image_dir, image_ext)
    dims = _read_dims(Path(orig_dims_csv)) if orig_dims_csv is not None else None
    records = [
        _record(image_id, files[image_id], annotations[image_id], dims, iou_thr, skip_box_thr)
        for image_id in sorted(annotations)
        if image_id in files
    ]
    if not records:
        raise InputError(
            str(image_dir),
            f"none of the {len(annotations)} images of {csv_path} "
            f"is here as <image_id>{'|'.join(image_ext)}",
            "check image_dir and image_ext",
        )
    class_names = [names.get(k, VINBIGDATA_CLASS_NAMES[k]) for k in range(NO_FINDING_ID)]
    return DetectionDataset(records, class_names)


def _record(
    image_id: str,
    path: Path,
    annotations: list[_Annotation],
    dims: dict[str, tuple[int, int]] | None,
    iou_thr: float,
    skip_box_thr: float,
) -> DetectionRecord:
    size = read_image_size(path)
    if detect_format(path) == "dicom":
        original = size
    elif dims is None:
        raise ConfigError(
            str(path),
            "the image is not a DICOM, so the original size its boxes refer to is unknown",
            "pass orig_dims_csv",
        )
    elif image_id not in dims:
        raise InputError(
            str(path),
            f"image id {image_id} is missing from orig_dims_csv",
            "add its original DICOM size there",
        )
    else:
        original = dims[image_id]
    boxes, labels = fuse_radiologists(annotations, original, iou_thr, skip_box_thr)
    rows, cols = size
    scale = np.array([cols, rows, cols, rows], np.float64)
    return make_record(path, boxes * scale, labels, size)


def fuse_radiologists(
    annotations: list[_Annotation],
    original_size: tuple[int, int],
    iou_thr: float = 0.5,
    skip_box_thr: float = 0.0,
) -> tuple[Boxes, Labels]:
    """Fuse the radiologists' boxes with WBF; return boxes normalised to ``[0, 1]`` and labels.

    Boxes are normalised by the original ``(rows, cols)``, clipped to the image (boxes left
    without area are dropped), given score 1 and passed one list per radiologist.

    Example:
        >>> fuse_radiologists([("R1", 0, (10, 10, 50, 50)), ("R2", 0, (14, 10, 54, 50))],
        ...                   (100, 100))[0] * 100
        array([[12., 10., 52., 50.]], dtype=float32)
    """
    rows, cols = original_size
    per_rad: dict[str, tuple[list[list[float]], list[int]]] = defaultdict(lambda: ([], []))
    for rad_id, class_id, (x1, y1, x2, y2) in annotations:
        box = np.clip([x1 / cols, y1 / rows, x2 / cols, y2 / rows], 0.0, 1.0)
        if box[2] > box[0] and box[3] > box[1]:
            per_rad[rad_id][0].append(box.tolist())
            per_rad[rad_id][1].append(class_id)
    if not per_rad:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    lists = list(per_rad.values())
    fused, _, labels = weighted_boxes_fusion(
        [boxes for boxes, _ in lists],
        [[1.0] * len(boxes) for boxes, _ in lists],
        [labels for _, labels in lists],
        iou_thr=iou_thr,
        skip_box_thr=skip_box_thr,
    )
    return np.asarray(fused, np.float32).reshape(-1, 4), np.asarray(labels).astype(np.int64)


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """Open a CSV, gzip-compressed or not (recognised by its bytes, not its name)."""
    if not path.is_file():
        raise InputNotFoundError(str(path), "the CSV file does not exist", "check the path")
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        if compressed:
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                yield handle
        else:
            with path.open(encoding="utf-8", newline="") as handle:
                yield handle
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(
            str(path),
            f"the CSV cannot be read ({type(err).__name__})",
            "give a UTF-8 CSV, optionally gzip-compressed",
        ) from None


def _read_annotations(path: Path) -> tuple[dict[str, list[_Annotation]], dict[int, str]]:
    annotations: dict[str, list[_Annotation]] = {}
    names: dict[int, str] = {}
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                str(path),
                f"the CSV lacks column(s) {', '.join(missing)}",
                f"give a Kaggle VinBigData CSV ({','.join(_COLUMNS)})",
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            image_id, class_id = row["image_id"], _class_id(where, row["class_id"])
            image_annotations = annotations.setdefault(image_id, [])
            if class_id == NO_FINDING_ID:  # an image with "No finding" rows only is a negative
                continue
            if names.setdefault(class_id, row["class_name"]) != row["class_name"]:
                raise InputError(
                    where,
                    f"class_id {class_id} is named both "
                    f"{names[class_id]!r} and {row['class_name']!r}",
                    "give each class_id one name",
                )
            box = _box(where, row)
            image_annotations.append((row["rad_id"], class_id, box))
    return annotations, names


def _class_id(where: str, text: str) -> int:
    try:
        class_id = int(text)
    except ValueError:
        class_id = -1
    if not 0 <= class_id <= NO_FINDING_ID:
        raise InputError(
            where, f"class_id {text!r} is not an integer in 0..{NO_FINDING_ID}", "fix the row"
        )
    return class_id


def _box(where: str, row: dict[str, str]) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(row[key]) for key in ("x_min", "y_min", "x_max", "y_max"))
    except (TypeError, ValueError):
        raise InputError(
            where, "a box coordinate is missing or not a number", "fix the row"
        ) from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InputError(where, "the box is not x_min < x_max, y_min < y_max", "fix the row")
    return x1, y1, x2, y2


def _image_files(image_dir: Path, image_ext: Sequence[str]) -> dict[str, Path]:
    if not image_dir.is_dir():
        raise InputNotFoundError(
            str(image_dir), "the image folder does not exist", "check the path"
        )
    priority = {ext.lower(): rank for rank, ext in enumerate(image_ext)}
    found: dict[str, Path] = {}
    for path in sorted(image_dir.iterdir(), key=lambda p: priority.get(p.suffix.lower(), -1)):
        if path.suffix.lower() in priority and path.is_file():
            found.setdefault(path.stem, path)
    return found


def _read_dims(path: Path) -> dict[str, tuple[int, int]]:
    dims: dict[str, tuple[int, int]] = {}
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        pair = next((p for p in _DIM_COLUMNS if set(p) <= set(fields)), None)
        if "image_id" not in fields or pair is None:
            raise InputError(
                str(path),
                "the CSV lacks image_id, dim0_height, dim1_width",
                "give one row per image with its original rows and columns",
            )
        for row in reader:
            try:
                rows, cols = int(float(row[pair[0]])), int(float(row[pair[1]]))
            except (TypeError, ValueError):
                rows = cols = 0
            if rows <= 0 or cols <= 0:
                raise InputError(
                    f"{path}:{reader.line_num}",
                    "the size is not two positive integers",
                    "fix the row",
                )
            dims[row["image_id"]] = (rows, cols)
    return dims

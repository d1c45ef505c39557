"""The detection record every dataset loader produces, and what the trainer does with it.

A loader (YOLO, COCO, VinBigData) turns annotations into a :class:`DetectionDataset`: one
:class:`DetectionRecord` per image, boxes ``x1, y1, x2, y2`` in the ORIGINAL pixels of the image
file, so no loader has to decode an image. :func:`load_sample` decodes one record for training
(float32, 16-bit safe) and resizes it; :func:`summarize` counts images, negatives and boxes.

Example:
    >>> record = DetectionRecord(Path("chest.png"), np.array([[10, 20, 50, 80]]), np.array([1]),
    ...                          image_size=(512, 512))
    >>> summarize(DetectionDataset([record], ["nodule", "mass"]))["boxes_per_class"]
    {'nodule': 0, 'mass': 1}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, UnidentifiedImageError

from insightray.errors import ConfigError, CorruptFileError, InputError
from insightray.imaging import LoadedImage, detect_format, read_image
from insightray.imaging.dicom import read_dataset
from insightray.training.augment import Sample, resize_long_side

Boxes = NDArray[np.float32]
Labels = NDArray[np.int64]
ImageReader = Callable[[Path], LoadedImage]

#: File suffixes of the images a folder split or a VinBigData folder may hold.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")

#: EXIF orientations that swap rows and columns (read_image undoes them on decoding).
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True, eq=False)
class DetectionRecord:
    """One annotated image; its arrays are stored read-only.

    Attributes:
        image_path: The image file (DICOM, PNG, JPEG or TIFF).
        boxes: float32 ``(N, 4)`` boxes ``x1, y1, x2, y2`` in the original pixels of the file.
        labels: int64 ``(N,)`` class indices into the dataset's ``class_names``.
        image_size: ``(rows, cols)`` of the file when known without decoding, else ``None``.

    Raises:
        ValueError: boxes are not ``(N, 4)`` or their count differs from the labels'.

    Example:
        >>> r = DetectionRecord(Path("a.png"), np.zeros((0, 4)), np.zeros(0), None)
        >>> r.boxes.dtype, r.labels.dtype, len(r)
        (dtype('float32'), dtype('int64'), 0)
    """

    image_path: Path
    boxes: Boxes
    labels: Labels
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float32)
        boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
        labels = np.array(self.labels, dtype=np.int64).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"DetectionRecord.boxes must be (N, 4), got {boxes.shape}")
        if len(boxes) != len(labels):
            raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels for {self.image_path}")
        boxes.setflags(write=False)
        labels.setflags(write=False)
        object.__setattr__(self, "image_path", Path(self.image_path))
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class DetectionDataset:
    """Annotated images plus the names of their classes (label ``k`` is ``class_names[k]``).

    Example:
        >>> DetectionDataset([], ["nodule"]).class_names
        ['nodule']
    """

    records: list[DetectionRecord]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.records)


def make_record(
    image_path: Path, boxes: ArrayLike, labels: ArrayLike, image_size: tuple[int, int] | None
) -> DetectionRecord:
    """Build a record whose boxes are clipped to ``image_size`` (when known).

    Example:
        >>> make_record(Path("a.png"), [[-2, 5, 120, 40]], [0], (50, 100)).boxes.tolist()
        [[0.0, 5.0, 100.0, 40.0]]
    """
    box_array = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    if image_size is not None:
        rows, cols = image_size
        box_array[:, [0, 2]] = box_array[:, [0, 2]].clip(0, cols)
        box_array[:, [1, 3]] = box_array[:, [1, 3]].clip(0, rows)
    return DetectionRecord(image_path, box_array, np.asarray(labels, np.int64), image_size)


def read_image_size(path: Path) -> tuple[int, int]:
    """Return ``(rows, cols)`` of an image from its header only (no pixel decoding).

    PNG, JPEG and TIFF sizes come from Pillow's header parse (rows and columns swapped when an
    EXIF orientation rotates the image, as :func:`~insightray.imaging.read_image` does); DICOM
    sizes from ``Rows`` and ``Columns`` read with pydicom's ``stop_before_pixels``.

    Raises:
        InputError: The file is missing, unsupported or its header is damaged.

    Example:
        >>> read_image_size(Path("chest.dcm"))  # doctest: +SKIP
        (2500, 2048)
    """
    source_format = detect_format(path)
    if source_format == "dicom":
        ds = read_dataset(path, force=True, header_only=True)
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        if rows <= 0 or cols <= 0:
            raise InputError(
                str(path),
                "the DICOM header has no Rows/Columns",
                "give a DICOM image object, not a report or structure set",
            )
        return rows, cols
    try:
        with Image.open(path) as image:
            cols, rows = image.size
            orientation = _exif_orientation(image, source_format)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise CorruptFileError(
            str(path),
            f"the image header cannot be read ({type(err).__name__})",
            "the file is truncated or damaged; export it again",
        ) from None
    return (cols, rows) if orientation in _TRANSPOSING_ORIENTATIONS else (rows, cols)


def _exif_orientation(image: Image.Image, source_format: str) -> int:
    """The EXIF orientation tag, read without decoding pixels (PNG: only an eXIf before IDAT)."""
    if source_format == "png":
        raw = image.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(_EXIF_ORIENTATION, 1))
    return int(image.getexif().get(_EXIF_ORIENTATION, 1))


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted, hidden entries skipped).

    Example:
        >>> list_images(Path("data/images/train"))  # doctest: +SKIP
        [PosixPath('data/images/train/a.png'), PosixPath('data/images/train/b.png')]
    """
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def load_sample(
    record: DetectionRecord, image_size: int, *, read: ImageReader = read_image
) -> tuple[Sample, tuple[int, int]]:
    """Decode a record's image and resize it so that its longer side is ``image_size``.

    Pixels stay float32 in ``[0, 1]`` (16-bit sources keep their precision); shrinking uses
    ``cv2.INTER_AREA``. Boxes are scaled by the exact factors of the rounded output size. The
    square letterbox is left to the augmentation step.

    Args:
        record: The image and its boxes in original pixels.
        image_size: Target length of the longer side, in pixels.
        read: The image reader (``read_image`` by default; a test or cache may swap it).

    Returns:
        The resized :class:`~insightray.training.augment.Sample` and the original
        ``(rows, cols)`` of the image.

    Raises:
        InputError: The image cannot be read, or its size differs from ``record.image_size``.
        ConfigError: ``image_size`` is not positive.

    Example:
        >>> sample, original = load_sample(record, 640)  # doctest: +SKIP
        >>> max(sample.image.shape), original  # doctest: +SKIP
        (640, (2500, 2048))
    """
    if image_size < 1:
        raise ConfigError(
            "image_size", f"{image_size} is not a positive number of pixels", "use e.g. 512 or 640"
        )
    pixels = read(record.image_path).pixels
    original = (int(pixels.shape[0]), int(pixels.shape[1]))
    if record.image_size is not None and tuple(record.image_size) != original:
        raise InputError(
            str(record.image_path),
            f"the image is {original[0]} x {original[1]} pixels but its annotations assume "
            f"{record.image_size[0]} x {record.image_size[1]}",
            "rebuild the dataset from the current image files",
        )
    sample = Sample(np.asarray(pixels, dtype=np.float32), record.boxes.copy(), record.labels.copy())
    return resize_long_side(sample, image_size), original


def summarize(dataset: DetectionDataset) -> dict[str, Any]:
    """Count images, negatives (images without boxes) and boxes, in total and per class.

    Example:
        >>> summarize(DetectionDataset([], ["nodule"]))
        {'images': 0, 'negatives': 0, 'boxes': 0, 'boxes_per_class': {'nodule': 0}}
    """
    counts = np.zeros(len(dataset.class_names), dtype=np.int64)
    negatives = 0
    for record in dataset.records:
        negatives += len(record) == 0
        counts += np.bincount(record.labels, minlength=len(counts))[: len(counts)]
    return {
        "images": len(dataset.records),
        "negatives": negatives,
        "boxes": int(counts.sum()),
        "boxes_per_class": dict(zip(dataset.class_names, counts.tolist(), strict=True)),
    }

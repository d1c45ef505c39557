"""Detection inference: preprocess, run a backend, suppress duplicates, map boxes back.

Images are letterboxed to the model's input size (aspect ratio kept, padded evenly), repeated to
the model's channels and batched. After the backend, each prediction's confidence is
objectness x class score; those above the threshold go through class-aware non-maximum
suppression, and the survivors are mapped from letterboxed input pixels back to the original
image's pixels and, when the pixel spacing is known, to millimetres.

Example:
    >>> from insightray.engine import load_predictor
    >>> predictor = load_predictor("models/chest/card.json", task="detection")  # doctest: +SKIP
    >>> result = predictor.predict_paths(["chest.dcm"])[0]  # doctest: +SKIP
    >>> result.to_dict()["detections"][0]["box_mm"]  # doctest: +SKIP
    [41.2, 80.6, 63.9, 101.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torchvision.ops import batched_nms

from insightray.engine.backends import Backend, checked_image_size
from insightray.engine.fusion import BoxSet, FusionMember, fuse_boxes, hflip_boxes
from insightray.engine.predictor import open_backend
from insightray.engine.preprocessing import prepare_image
from insightray.errors import ConfigError
from insightray.imaging import LoadedImage, read_image
from insightray.imaging.transforms import LetterboxInfo
from insightray.models import ModelCard
from insightray.models.ensemble import Fusion, TestTimeAugmentation

__all__ = [
    "Detection",
    "DetectionPredictor",
    "DetectionResult",
    "open_detection_predictor",
    "postprocess",
    "select_boxes",
]

FloatArray = NDArray[np.float32]
Box = tuple[float, float, float, float]
T = TypeVar("T")

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.45
DEFAULT_MAX_DET = 300
#: Highest-scoring candidates kept before NMS, bounding its cost on untrained models.
DEFAULT_MAX_CANDIDATES = 30_000


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        class_id: Index into the model's labels.
        class_name: The label.
        score: Objectness x class score, in ``[0, 1]``.
        box_px: ``(x1, y1, x2, y2)`` in original image pixels (x along columns).
        box_mm: The same box in millimetres from the image origin, if the spacing is known.
    """

    class_id: int
    class_name: str
    score: float
    box_px: Box
    box_mm: Box | None = None

    def to_dict(self, decimals: int = 3) -> dict[str, Any]:
        """Return the JSON form; box coordinates rounded to ``decimals``, the score to 5."""
        return {
            "class_id": self.class_id,
            "class_name": self.class_name,
            "score": round(self.score, 5),
            "box": [round(value, decimals) for value in self.box_px],
            "box_mm": None if self.box_mm is None else [round(v, decimals) for v in self.box_mm],
        }


@dataclass(frozen=True)
class DetectionResult:
    """The detections of one image and what produced them.

    Attributes:
        path: The image's path (or the name given to an array).
        detections: Best first.
        original_size: ``(rows, columns)`` of the image as read.
        pixel_spacing: ``(row, column)`` millimetres per pixel, if known.
        model_name: Name from the model card.
        model_version: Version from the model card.
        warnings: Why the image looks unlike the model's training images (see
            :mod:`insightray.monitoring.guard`); empty when all is well or unchecked.
        ood_score: Out-of-distribution score (above 1: beyond the guard's threshold);
            ``None`` when the model has no reference profile or the guard did not run.
    """

    path: str
    detections: tuple[Detection, ...]
    original_size: tuple[int, int]
    pixel_spacing: tuple[float, float] | None
    model_name: str
    model_version: str
    warnings: tuple[str, ...] = ()
    ood_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON contract the CLI prints per image.

        Example:
            >>> DetectionResult("a.png", (), (10, 20), None, "yolov5n", "1.0").to_dict()
            ... # doctest: +NORMALIZE_WHITESPACE
            {'image': 'a.png', 'model': {'name': 'yolov5n', 'version': '1.0'},
             'original_size': [10, 20], 'pixel_spacing_mm': None, 'detections': [],
             'warnings': [], 'ood_score': None}
        """
        return {
            "image": self.path,
            "model": {"name": self.model_name, "version": self.model_version},
            "original_size": list(self.original_size),
            "pixel_spacing_mm": None if self.pixel_spacing is None else list(self.pixel_spacing),
            "detections": [detection.to_dict() for detection in self.detections],
            "warnings": list(self.warnings),
            "ood_score": self.ood_score,
        }


def select_boxes(
    predictions: FloatArray,
    conf_threshold: float = DEFAULT_CONF,
    iou_threshold: float = DEFAULT_IOU,
    max_det: int | None = DEFAULT_MAX_DET,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """Score, threshold and class-aware NMS one image's ``(N, 5 + nc)`` predictions.

    Each prediction keeps its best class; its confidence is objectness x that class's score
    and it is kept when the confidence is above ``conf_threshold``.

    Returns:
        ``(boxes (K, 4) x1, y1, x2, y2 in input pixels, scores (K,), class ids (K,))``, best
        first, ``K <= max_det`` (all survivors when ``max_det`` is ``None``).

    Example:
        >>> row = np.array([[32, 32, 10, 10, 0.9, 0.8, 0.1]], np.float32)
        >>> boxes, scores, classes = select_boxes(row)
        >>> boxes.tolist(), round(float(scores[0]), 2), classes.tolist()
        ([[27.0, 27.0, 37.0, 37.0]], 0.72, [0])
    """
    values = torch.from_numpy(np.ascontiguousarray(predictions, dtype=np.float32))
    if values.ndim != 2 or values.shape[1] < 6:
        raise ConfigError(
            f"predictions of shape {tuple(values.shape)}",
            "expected (N, 5 + num_classes) with at least one class",
            "pass one image's predictions from a detection backend",
        )
    class_scores, class_ids = (values[:, 5:] * values[:, 4:5]).max(dim=1)
    keep = class_scores > conf_threshold
    centres, sizes = values[keep, 0:2], values[keep, 2:4]
    boxes = torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)
    scores, class_ids = class_scores[keep], class_ids[keep]
    if len(scores) > max_candidates:
        top = scores.topk(max_candidates).indices
        boxes, scores, class_ids = boxes[top], scores[top], class_ids[top]
    kept = batched_nms(boxes, scores, class_ids, iou_threshold)[:max_det]
    return boxes[kept].numpy(), scores[kept].numpy(), class_ids[kept].numpy().astype(np.int64)


def postprocess(
    predictions: FloatArray,
    info: LetterboxInfo,
    labels: Sequence[str],
    conf_threshold: float = DEFAULT_CONF,
    iou_threshold: float = DEFAULT_IOU,
    max_det: int = DEFAULT_MAX_DET,
    pixel_spacing: tuple[float, float] | None = None,
) -> tuple[Detection, ...]:
    """Turn one image's predictions into detections on the original image.

    Boxes are mapped with ``info.to_original`` (and clipped to the image); boxes left with no
    area, such as those wholly in the padding, are dropped before ``max_det`` applies. With
    ``pixel_spacing`` ``(row, column)`` mm, ``box_mm`` is x times the column spacing and y
    times the row spacing.

    Raises:
        ConfigError: The predictions' class count differs from the number of labels.
    """
    num_classes = predictions.shape[-1] - 5
    if num_classes != len(labels):
        raise ConfigError(
            "model output",
            f"{num_classes} classes predicted but the card has {len(labels)} labels",
            "use the card that belongs to these weights",
        )
    found = boxes_on_original(predictions, info, conf_threshold, iou_threshold, max_det)
    return to_detections(found, labels, pixel_spacing)


def boxes_on_original(
    predictions: FloatArray,
    info: LetterboxInfo,
    conf_threshold: float,
    iou_threshold: float,
    max_det: int,
) -> BoxSet:
    """:func:`select_boxes` mapped to the original image, boxes without area dropped."""
    boxes, scores, class_ids = select_boxes(predictions, conf_threshold, iou_threshold, None)
    original = info.to_original(boxes)
    has_area = (original[:, 2] > original[:, 0]) & (original[:, 3] > original[:, 1])
    kept = np.flatnonzero(has_area)[:max_det]
    return original[kept].astype(np.float32), scores[kept], class_ids[kept]


def to_detections(
    found: BoxSet, labels: Sequence[str], pixel_spacing: tuple[float, float] | None = None
) -> tuple[Detection, ...]:
    """Detections from boxes in original pixels (and millimetres when the spacing is known)."""
    detections = []
    for box, score, class_id in zip(*found, strict=True):
        box_px = _as_box(box)
        box_mm = None
        if pixel_spacing is not None:
            row_mm, col_mm = pixel_spacing
            box_mm = _as_box(box * np.array([col_mm, row_mm, col_mm, row_mm], dtype=np.float64))
        detections.append(Detection(int(class_id), labels[class_id], float(score), box_px, box_mm))
    return tuple(detections)


class DetectionPredictor:
    """Detect objects in radiographs with any :class:`~insightray.engine.backends.Backend`.

    Args:
        backend: A :class:`TorchBackend`, :class:`OnnxBackend` or any compatible callable.
        card: The model card: labels, name, version and the defaults below.
        image_size: Network input side (or ``(rows, cols)``), a multiple of 32; defaults to
            ``card.input_size``.
        conf_threshold: Minimum confidence; defaults to ``card.thresholds.confidence``, else
            0.25.
        iou_threshold: NMS IoU; defaults to ``card.thresholds.iou``, else 0.45.
        channels: Input channels (grayscale is repeated); defaults to, and must equal, the
            backend's.
        max_det: Most detections kept per image.
        pad_value: Letterbox padding intensity; defaults to ``card.preprocessing.pad_value``.
        members: An ensemble's models (``backend`` is then the first one's); each image's
            boxes from all members are fused with ``fusion``. Members whose input size,
            channels and padding agree share one prepared batch.
        tta: Test-time augmentation: every view of each image (mirrored, rescaled) is run
            and the views' boxes fused (with ``fusion`` for an ensemble, else the TTA's).
        fusion: How an ensemble's boxes are merged.

    Example:
        >>> from insightray.engine.backends import TorchBackend
        >>> from insightray.models import create_model
        >>> card = ModelCard("yolov5n", "detection", "0", ("nodule",), (64, 64))
        >>> backend = TorchBackend(create_model("yolov5n", num_classes=1))
        >>> predictor = DetectionPredictor(backend, card)
        >>> result = predictor.predict_arrays([np.zeros((80, 100), np.float32)])[0]
        >>> result.original_size
        (80, 100)
    """

    def __init__(
        self,
        backend: Backend,
        card: ModelCard,
        image_size: int | tuple[int, int] | None = None,
        conf_threshold: float | None = None,
        iou_threshold: float | None = None,
        channels: int | None = None,
        max_det: int = DEFAULT_MAX_DET,
        pad_value: float | None = None,
        members: Sequence[FusionMember] = (),
        tta: TestTimeAugmentation | None = None,
        fusion: Fusion | None = None,
    ) -> None:
        self.backend = backend
        self.card = card
        self.image_size = checked_image_size(card.input_size if image_size is None else image_size)
        if backend.input_size is not None and backend.input_size != self.image_size:
            raise ConfigError(
                f"image size {self.image_size}",
                f"the backend's graph takes exactly {backend.input_size}",
                "use that size or export the model again at this size",
            )
        conf = _first(conf_threshold, card.thresholds.confidence, DEFAULT_CONF)
        iou = _first(iou_threshold, card.thresholds.iou, DEFAULT_IOU)
        self.conf_threshold = _checked_fraction("conf_threshold", conf)
        self.iou_threshold = _checked_fraction("iou_threshold", iou)
        if max_det < 1:
            raise ConfigError(f"max_det {max_det}", "it must be at least 1", "use e.g. 300")
        self.max_det = max_det
        self.channels = backend.input_channels if channels is None else channels
        if self.channels != backend.input_channels:
            raise ConfigError(
                f"channels {channels}",
                f"the model takes {backend.input_channels}-channel images",
                "leave channels unset or match the model",
            )
        self.pad_value = _first(pad_value, card.preprocessing.pad_value, 0.0)
        alone = FusionMember(backend, self.image_size, self.channels, self.pad_value, 1.0)
        self.members: tuple[FusionMember, ...] = tuple(members) or (alone,)
        self.fusion = fusion or Fusion()
        self.tta = tta

    @property
    def tta(self) -> TestTimeAugmentation | None:
        """The test-time augmentation in use (``None``: each image is run once)."""
        return self._tta

    @tta.setter
    def tta(self, value: TestTimeAugmentation | None) -> None:
        rescaled = value is not None and any(scale != 1.0 for scale in value.scales)
        fixed = [m.name or "the model" for m in self.members if m.backend.input_size is not None]
        if rescaled and fixed:
            raise ConfigError(
                f"test-time scales {value.scales if value else ()}",
                f"{fixed[0]} runs a graph of one fixed input size",
                "use the torch backend, or TTA scales [1.0] (flip only)",
            )
        self._tta = value

    @property
    def fused(self) -> bool:
        """Whether several models or views are fused per image."""
        return len(self.members) > 1 or self._tta is not None

    def predict(self, inputs: Sequence[LoadedImage | NDArray[Any]]) -> list[DetectionResult]:
        """Detect objects in images read with :func:`~insightray.imaging.read_image` or arrays.

        Results are named ``image_<i>``; use :meth:`predict_paths` to name them by file.
        """
        images = [item.pixels if isinstance(item, LoadedImage) else item for item in inputs]
        spacings = [item.meta.pixel_spacing if isinstance(item, LoadedImage) else None
                    for item in inputs]  # fmt: skip
        names = [f"image_{index}" for index in range(len(images))]
        return self.predict_arrays(images, spacings, names, batch_size=max(1, len(images)))

    def warm_up(self) -> None:
        """Run one blank image through the backend (allocations, kernel choice)."""
        self.predict_arrays([np.zeros(self.image_size, np.float32)])

    def predict_arrays(
        self,
        arrays: Sequence[NDArray[Any]],
        pixel_spacings: Sequence[tuple[float, float] | None] | None = None,
        names: Sequence[str] | None = None,
        batch_size: int = 8,
    ) -> list[DetectionResult]:
        """Detect objects in 2-D grayscale arrays (float in ``[0, 1]``, or integers).

        Args:
            arrays: The images.
            pixel_spacings: Per image ``(row, column)`` mm, or ``None``; all unknown if omitted.
            names: Reported as each result's ``path``; ``"array_<i>"`` if omitted.
            batch_size: Images per backend call.
        """
        spacings = list(pixel_spacings) if pixel_spacings is not None else [None] * len(arrays)
        labels = list(names) if names is not None else [f"array_{i}" for i in range(len(arrays))]
        if not len(spacings) == len(labels) == len(arrays):
            raise ConfigError(
                "predict_arrays",
                "arrays, spacings and names differ in length",
                "give one of each per image",
            )
        items = zip(arrays, spacings, labels, strict=True)
        return [result for chunk in _chunks(items, batch_size) for result in self._run(chunk)]

    def predict_images(
        self, images: Sequence[LoadedImage], names: Sequence[str], batch_size: int = 8
    ) -> list[DetectionResult]:
        """Detect objects in images already read with :func:`~insightray.imaging.read_image`."""
        return self.predict_arrays(
            [image.pixels for image in images],
            [image.meta.pixel_spacing for image in images],
            names,
            batch_size,
        )

    def iter_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = 8,
        reader: Callable[[Path], LoadedImage] = read_image,
    ) -> Iterator[DetectionResult]:
        """Yield one result per file, reading only ``batch_size`` images at a time.

        Args:
            paths: DICOM, PNG, JPEG or TIFF files.
            batch_size: Images per backend call.
            reader: Reads one file, e.g. ``functools.partial(read_image, frame=0)``.

        Raises:
            InputError: A file cannot be read (raised when its batch is reached).
        """
        for chunk in _chunks(iter(paths), batch_size):
            images = [reader(Path(path)) for path in chunk]
            yield from self.predict_images(images, [str(path) for path in chunk], batch_size)

    def predict_paths(
        self,
        paths: Iterable[str | Path],
        batch_size: int = 8,
        reader: Callable[[Path], LoadedImage] = read_image,
    ) -> list[DetectionResult]:
        """Detect objects in files; see :meth:`iter_paths`."""
        return list(self.iter_paths(paths, batch_size, reader))

    def find_boxes(
        self,
        arrays: Sequence[NDArray[Any]],
        conf_threshold: float,
        iou_threshold: float,
        max_det: int,
    ) -> list[BoxSet]:
        """Boxes, scores and class ids per image, in original pixels, best first.

        With an ensemble or TTA, each model and view keeps boxes down to the lower of
        ``conf_threshold`` and the fusion's skip threshold; ``conf_threshold`` and
        ``max_det`` apply to the fused boxes.
        """
        if not self.fused:
            size, channels, pad = self.image_size, self.channels, self.pad_value
            prepared = [prepare_image(array, size, channels, pad) for array in arrays]
            predictions = self.backend(np.stack([image for image, _ in prepared]))
            self._check_classes(predictions)
            return [
                boxes_on_original(output, info, conf_threshold, iou_threshold, max_det)
                for output, (_, info) in zip(predictions, prepared, strict=True)
            ]
        return self._fused_boxes(arrays, conf_threshold, iou_threshold, max_det)

    def _fused_boxes(
        self, arrays: Sequence[NDArray[Any]], conf: float, iou: float, max_det: int
    ) -> list[BoxSet]:
        views = self._tta.views() if self._tta is not None else ((1.0, False),)
        fusion = self.fusion if len(self.members) > 1 or self._tta is None else self._tta.fusion
        floor = min(conf, fusion.skip_threshold)
        per_image: list[list[BoxSet]] = [[] for _ in arrays]
        weights: list[float] = []
        groups: dict[tuple[tuple[int, int], int, float], list[FusionMember]] = {}
        for member in self.members:
            groups.setdefault((member.image_size, member.channels, member.pad_value), []).append(
                member
            )
        for scale, flipped in views:
            sources = [np.ascontiguousarray(a[:, ::-1]) if flipped else a for a in arrays]
            for (size, channels, pad), members in groups.items():
                side = (_multiple_of_32(size[0] * scale), _multiple_of_32(size[1] * scale))
                prepared = [prepare_image(array, side, channels, pad) for array in sources]
                batch = np.stack([image for image, _ in prepared])  # shared by the group
                for member in members:
                    predictions = member.backend(batch)
                    self._check_classes(predictions)
                    weights.append(member.weight)
                    for index, (output, (_, info)) in enumerate(
                        zip(predictions, prepared, strict=True)
                    ):
                        boxes, scores, classes = boxes_on_original(
                            output, info, floor, iou, max_det
                        )
                        if flipped:
                            boxes = hflip_boxes(boxes, int(arrays[index].shape[1]))
                        per_image[index].append((boxes, scores, classes))
        results = []
        for array, box_sets in zip(arrays, per_image, strict=True):
            shape = (int(array.shape[0]), int(array.shape[1]))
            boxes, scores, classes = fuse_boxes(box_sets, weights, shape, fusion)
            kept = np.flatnonzero(scores > conf)[:max_det]
            results.append((boxes[kept], scores[kept], classes[kept]))
        return results

    def _check_classes(self, predictions: FloatArray) -> None:
        num_classes = predictions.shape[-1] - 5
        if num_classes != len(self.card.labels):
            raise ConfigError(
                "model output",
                f"{num_classes} classes predicted but the card has {len(self.card.labels)} labels",
                "use the card that belongs to these weights",
            )

    def _run(
        self, chunk: Sequence[tuple[NDArray[Any], tuple[float, float] | None, str]]
    ) -> list[DetectionResult]:
        arrays = [array for array, _, _ in chunk]
        found = self.find_boxes(arrays, self.conf_threshold, self.iou_threshold, self.max_det)
        card = self.card
        return [
            DetectionResult(
                name,
                to_detections(boxes, card.labels, spacing),
                (int(array.shape[0]), int(array.shape[1])),
                spacing,
                card.name,
                card.version,
            )
            for boxes, (array, spacing, name) in zip(found, chunk, strict=True)
        ]


def _multiple_of_32(side: float) -> int:
    return max(32, round(side / 32.0) * 32)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    if size < 1:
        raise ConfigError(f"batch size {size}", "it must be at least 1", "use e.g. 8")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def open_detection_predictor(
    card: ModelCard,
    card_path: Path,
    *,
    backend: str = "auto",
    device: str = "cpu",
    image_size: int | None = None,
    tta: bool | TestTimeAugmentation | None = None,
    **options: Any,
) -> DetectionPredictor:
    """The ``detection`` task's predictor factory (see :func:`insightray.engine.load_predictor`).

    An ensemble card (one with an ``ensemble`` section) opens each member from its own card,
    after checking its weights' SHA-256 against the ensemble's list.

    Args:
        card: The card.
        card_path: Its file; the weights (or the members' folders) lie beside it.
        backend: A registered backend name (``torch``, ``onnx``...).
        device: ``"cpu"`` or a CUDA device.
        image_size: Network input side; defaults to the card's (single models only).
        tta: ``True`` for the card's test-time augmentation (or the default flip and
            1.25x scale), ``False`` for none, a :class:`TestTimeAugmentation`, or ``None``
            for what the card says.
        **options: Passed to :class:`DetectionPredictor` (thresholds, ``max_det``...).
    """
    chosen_tta = card.tta if tta is None or tta is True else (tta or None)
    if tta is True and chosen_tta is None:
        chosen_tta = TestTimeAugmentation()
    if card.ensemble is None:
        chosen = open_backend(backend, card, card_path, device)
        return DetectionPredictor(chosen, card, image_size=image_size, tta=chosen_tta, **options)
    if image_size is not None:
        raise ConfigError(
            f"image size {image_size}", "an ensemble runs each member at its own size",
            "leave --img unset",
        )  # fmt: skip
    from insightray.engine.ensemble import open_members

    members = open_members(card, card_path, backend, device)
    first = members[0]
    return DetectionPredictor(
        first.backend,
        card,
        image_size=first.image_size,
        channels=first.channels,
        pad_value=first.pad_value,
        members=members,
        tta=chosen_tta,
        fusion=card.ensemble.fusion,
        **options,
    )


def _first(*values: float | None) -> float:
    """The first value that is set (an argument, then the card, then the default)."""
    return float(next(value for value in values if value is not None))


def _as_box(values: NDArray[Any]) -> Box:
    x1, y1, x2, y2 = (float(value) for value in values)
    return x1, y1, x2, y2


def _checked_fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} {value}", "it must lie in [0, 1]", "use e.g. 0.25")
    return float(value)

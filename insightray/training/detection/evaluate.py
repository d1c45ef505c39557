"""Evaluate a detector on an annotated split: the one implementation the trainer and CLI share.

Images are letterboxed as the inference engine does, the detector runs on batches, and the
engine's own postprocessing (confidence threshold, class-aware NMS, mapping back to original
pixels) turns outputs into boxes that are matched against the annotations in original pixels.

Example:
    >>> predictor = load_predictor("model/card.json", task="detection")  # doctest: +SKIP
    >>> val = load_data_split("data.yaml", "val")  # doctest: +SKIP
    >>> metrics = evaluate_detector(predictor, val)  # doctest: +SKIP
    >>> metrics.to_dict()["map50"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from insightray.engine import Backend, DetectionPredictor, TorchBackend, postprocess
from insightray.errors import ConfigError
from insightray.imaging import read_image
from insightray.training.detection.data import DetectionTrainData, collate_detection
from insightray.training.detection.datasets import DetectionDataset
from insightray.training.metrics import DetectionEvaluator, DetectionMetrics

__all__ = ["EVAL_CONF", "EVAL_IOU", "collect_detections", "evaluate_detector"]

#: Confidence threshold for mAP: keep nearly every prediction so the PR curve is complete.
EVAL_CONF = 0.001
#: NMS IoU threshold for mAP.
EVAL_IOU = 0.6


def evaluate_detector(
    detector: nn.Module | Backend | DetectionPredictor,
    dataset: DetectionDataset,
    image_size: int | None = None,
    *,
    pr_conf_threshold: float = 0.25,
    **options: Any,
) -> DetectionMetrics:
    """Compute mAP@0.4, mAP@0.5, mAP@0.5:0.95, per-class AP, precision and recall.

    Arguments as :func:`collect_detections`; ``pr_conf_threshold`` is the confidence at
    which the pooled precision and recall are reported.
    """
    evaluator = collect_detections(detector, dataset, image_size, **options)
    return evaluator.compute(conf_threshold=pr_conf_threshold)


def collect_detections(
    detector: nn.Module | Backend | DetectionPredictor,
    dataset: DetectionDataset,
    image_size: int | None = None,
    *,
    conf_threshold: float = EVAL_CONF,
    iou_threshold: float = EVAL_IOU,
    max_det: int = 300,
    batch_size: int = 8,
    workers: int = 0,
    device: str = "cpu",
    pad_value: float | None = None,
) -> DetectionEvaluator:
    """Run a detector over an annotated split and match its boxes to the annotations.

    The returned evaluator computes the metrics (:meth:`DetectionEvaluator.compute`) and
    their bootstrap intervals (:mod:`insightray.training.metrics.detection_ci`).

    Args:
        detector: A PyTorch detector (run as it is, not fused; its training mode is
            restored), any :class:`~insightray.engine.Backend`, or a
            :class:`~insightray.engine.DetectionPredictor` (run as it predicts: its
            members, size, channels, padding and test-time augmentation; its thresholds are
            not).
        dataset: The annotated images; boxes in original pixels.
        image_size: Square input side; defaults to the predictor's. Required otherwise.
        conf_threshold: Predictions below this confidence are dropped before NMS.
        iou_threshold: NMS IoU threshold.
        max_det: Most detections kept per image.
        batch_size: Images per forward pass.
        workers: Data-loading worker processes.
        device: Device for a PyTorch module.
        pad_value: Letterbox padding; defaults to the predictor's, else 0.

    Raises:
        ConfigError: No image size is known, it is not square, or the detector's class count
            differs from the dataset's.
    """
    backend, side, pad, labels = _resolve(detector, image_size, pad_value, device)
    if labels is not None and len(labels) != len(dataset.class_names):
        raise ConfigError(
            "evaluation",
            f"the model has {len(labels)} classes but the data {len(dataset.class_names)}",
            "evaluate on data with the model's classes",
        )
    settings = (conf_threshold, iou_threshold, max_det)
    if isinstance(detector, DetectionPredictor) and image_size is None and pad_value is None:
        return _collect_with_predictor(detector, dataset, settings, batch_size, workers)
    module = detector if isinstance(detector, nn.Module) else None
    was_training = module.training if module is not None else False
    data = DetectionTrainData(dataset, side, backend.input_channels, None, pad_value=pad)
    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_detection,
    )
    evaluator = DetectionEvaluator(dataset.class_names)
    records = iter(dataset.records)
    try:
        for batch in loader:
            predictions = backend(batch.images.numpy())
            for output, info, path in zip(predictions, batch.infos, batch.paths, strict=True):
                record = next(records)
                assert info is not None  # validation items always carry their letterbox
                found = postprocess(output, info, dataset.class_names, *settings)
                evaluator.add(
                    record.boxes,
                    record.labels,
                    np.array([d.box_px for d in found], np.float64).reshape(-1, 4),
                    [d.score for d in found],
                    [d.class_id for d in found],
                    image_id=path,
                )
    finally:
        if module is not None:
            module.train(was_training)
    return evaluator


class _Pixels(Dataset[tuple[Any, str]]):
    """The split's images as read (decoded in loader workers when there are any)."""

    def __init__(self, dataset: DetectionDataset) -> None:
        self.records = dataset.records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        path = self.records[index].image_path
        return read_image(path).pixels, str(path)


def _collect_with_predictor(
    predictor: DetectionPredictor,
    dataset: DetectionDataset,
    settings: tuple[float, float, int],
    batch_size: int,
    workers: int,
) -> DetectionEvaluator:
    """The predictor's own path (:meth:`DetectionPredictor.find_boxes`) on original images:
    the one that runs ensembles and test-time augmentation."""
    loader = DataLoader(
        _Pixels(dataset), batch_size=batch_size, num_workers=workers, collate_fn=list
    )
    evaluator = DetectionEvaluator(dataset.class_names)
    records = iter(dataset.records)
    for batch in loader:
        found = predictor.find_boxes([pixels for pixels, _ in batch], *settings)
        for (boxes, scores, classes), (_, path) in zip(found, batch, strict=True):
            record = next(records)
            evaluator.add(record.boxes, record.labels, boxes, scores, classes, image_id=path)
    return evaluator


def _resolve(
    detector: nn.Module | Backend | DetectionPredictor,
    image_size: int | None,
    pad_value: float | None,
    device: str,
) -> tuple[Backend, int, float, Sequence[str] | None]:
    labels: Sequence[str] | None = None
    pad = 0.0 if pad_value is None else pad_value
    size: int | tuple[int, int] | None = image_size
    if isinstance(detector, DetectionPredictor):
        backend: Backend = detector.backend
        labels = detector.card.labels
        pad = detector.pad_value if pad_value is None else pad_value
        size = detector.image_size if image_size is None else image_size
    elif isinstance(detector, nn.Module):
        backend = TorchBackend(detector, device=device, fuse=False)
    else:
        backend = detector
    if size is None:
        raise ConfigError("evaluation", "no image size given", "pass image_size, e.g. 640")
    rows, cols = (size, size) if isinstance(size, int) else size
    if rows != cols or rows % 32 or rows <= 0:
        raise ConfigError(
            f"image size {size}", "evaluation needs a square multiple of 32", "use e.g. 640"
        )
    return backend, int(rows), float(pad), labels

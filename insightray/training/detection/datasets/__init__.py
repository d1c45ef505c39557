"""Detection datasets: YOLO, COCO and VinBigData annotations as one record type.

Every loader returns a :class:`DetectionDataset` of :class:`DetectionRecord` (boxes in the
original pixels of each image file, no image decoded); :func:`load_sample` decodes and resizes
one record for the augmentation pipeline; :func:`summarize` counts images, negatives and boxes.

Example:
    >>> config = load_data_config("tbx11k/data.yaml")  # doctest: +SKIP
    >>> summarize(load_split(config, "val"))  # doctest: +SKIP
    {'images': 100, 'negatives': 0, 'boxes': 178, 'boxes_per_class': {...}}
"""

from __future__ import annotations

from insightray.training.detection.datasets.coco import load_coco
from insightray.training.detection.datasets.dataset import (
    DetectionDataset,
    DetectionRecord,
    load_sample,
    read_image_size,
    summarize,
)
from insightray.training.detection.datasets.vinbigdata import (
    VINBIGDATA_CLASS_NAMES,
    fuse_radiologists,
    load_vinbigdata,
)
from insightray.training.detection.datasets.yolo import (
    DataConfig,
    label_path,
    load_data_config,
    load_split,
    parse_label_file,
)

__all__ = [
    "VINBIGDATA_CLASS_NAMES",
    "DataConfig",
    "DetectionDataset",
    "DetectionRecord",
    "fuse_radiologists",
    "label_path",
    "load_coco",
    "load_data_config",
    "load_sample",
    "load_split",
    "load_vinbigdata",
    "parse_label_file",
    "read_image_size",
    "summarize",
]

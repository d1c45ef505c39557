"""Detection data for training: where it comes from, how an item is made, how a batch looks.

:func:`load_train_val` reads a data description: a YOLO ``data.yaml`` (see
:func:`~insightray.training.detection.datasets.load_data_config`) or a small YAML for the VinBigData
Kaggle CSV::

    format: vinbigdata
    csv: train.csv              # the Kaggle CSV (.csv or .csv.gz), radiologists fused by WBF
    images: images              # folder of <image_id>.png / .dicom / .dcm
    orig_dims: orig_dims.csv    # original DICOM sizes, needed for PNG images
    val_fraction: 0.2           # share of images held out for validation (seeded split)
    split_seed: 0
    iou_thr: 0.5                # WBF fusion IoU

(paths relative to the YAML file). The same keys may be given as a mapping.

:class:`DetectionTrainData` turns a
:class:`~insightray.training.detection.datasets.DetectionDataset` into tensors: training
items are augmented (mosaic, affine, flip, intensity) with a generator
seeded by ``(seed, epoch, index)``, so the result does not depend on the worker that makes it;
validation items are letterboxed exactly as the inference engine does. :func:`collate_detection`
stacks items into a :class:`DetectionBatch`. :class:`EpochSampler` tags each index with its
epoch, so one loader with persistent workers serves every epoch (the epoch travels with the
index, not in the dataset copy each worker holds).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from numpy.typing import NDArray
from torch.utils.data import Dataset, Sampler, WeightedRandomSampler

from insightray.engine import prepare_image
from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging import read_image
from insightray.imaging.transforms import LetterboxInfo, ToChannels
from insightray.training.augment import (
    AugmentConfig,
    Sample,
    build_augmentations,
    inverse_frequency_image_weights,
)
from insightray.training.detection.datasets import (
    DetectionDataset,
    DetectionRecord,
    load_data_config,
    load_sample,
    load_split,
    load_vinbigdata,
)

__all__ = [
    "DetectionBatch",
    "DetectionTrainData",
    "EpochSampler",
    "TrainValData",
    "collate_detection",
    "inverse_frequency_sampler",
    "load_data_split",
    "load_train_val",
]

DataSpec = str | Path | Mapping[str, Any]
_VINBIGDATA_KEYS = frozenset(
    {"format", "csv", "images", "orig_dims", "val_fraction", "split_seed", "iou_thr"}
)


@dataclass(frozen=True)
class TrainValData:
    """The training and validation splits of a data description, and a one-line summary."""

    train: DetectionDataset
    val: DetectionDataset
    description: str


def load_train_val(data: DataSpec) -> TrainValData:
    """Load the ``train`` and ``val`` splits of a YOLO ``data.yaml`` or a VinBigData YAML.

    Raises:
        InputNotFoundError: The YAML or a file it names does not exist.
        ConfigError: The YAML is invalid, or the splits have different class names.

    Example:
        >>> splits = load_train_val("tbx11k/data.yaml")  # doctest: +SKIP
        >>> len(splits.train), len(splits.val)  # doctest: +SKIP
        (500, 100)
    """
    train, val = load_data_split(data, "train"), load_data_split(data, "val")
    if train.class_names != val.class_names:
        raise ConfigError(str(data), "train and val name different classes", "fix the data")
    name = Path(data).parent.name if isinstance(data, (str, Path)) else "vinbigdata"
    description = (
        f"{name}: {len(train)} training and {len(val)} validation images, "
        f"classes {', '.join(train.class_names)}"
    )
    return TrainValData(train, val, description)


def load_data_split(data: DataSpec, split: str) -> DetectionDataset:
    """Load one split (``train``, ``val`` or, for YOLO data, ``test``) of a data description.

    Example:
        >>> load_data_split("tbx11k/data.yaml", "val").class_names  # doctest: +SKIP
        ['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis']
    """
    if isinstance(data, Mapping):
        return _vinbigdata_split(data, Path.cwd(), split, "data")
    path = Path(data)
    if not path.is_file():
        raise InputNotFoundError(str(path), "the data description does not exist", "check --data")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), f"not valid YAML ({type(error).__name__})", "fix it") from None
    if isinstance(content, dict) and content.get("format") is not None:
        return _vinbigdata_split(content, path.parent, split, str(path))
    return load_split(load_data_config(path), split)


def _vinbigdata_split(
    spec: Mapping[str, Any], base: Path, split: str, subject: str
) -> DetectionDataset:
    unknown = sorted(str(key) for key in spec if key not in _VINBIGDATA_KEYS)
    if spec.get("format") != "vinbigdata" or unknown:
        raise ConfigError(
            subject,
            f"format {spec.get('format')!r} with keys {', '.join(unknown) or '(none unknown)'}",
            f"use format: vinbigdata with keys {', '.join(sorted(_VINBIGDATA_KEYS))}",
        )
    if "csv" not in spec or "images" not in spec:
        raise ConfigError(subject, "the VinBigData keys csv and images are required", "add them")
    if split not in ("train", "val"):
        raise ConfigError(subject, f"VinBigData data has no '{split}' split", "use train or val")
    orig_dims = spec.get("orig_dims")
    dataset = load_vinbigdata(
        base / str(spec["csv"]),
        base / str(spec["images"]),
        orig_dims_csv=None if orig_dims is None else base / str(orig_dims),
        iou_thr=float(spec.get("iou_thr", 0.5)),
    )
    fraction = float(spec.get("val_fraction", 0.2))
    count = len(dataset.records)
    if not 0 < fraction < 1 or count < 2:
        raise ConfigError(
            subject,
            f"cannot hold out val_fraction {fraction} of {count} images",
            "use 0 < val_fraction < 1 and at least 2 images",
        )
    order = np.random.default_rng(int(spec.get("split_seed", 0))).permutation(count)
    held_out = min(max(round(fraction * count), 1), count - 1)
    chosen = sorted(order[:held_out] if split == "val" else order[held_out:])
    return DetectionDataset([dataset.records[i] for i in chosen], list(dataset.class_names))


class DetectionBatch(NamedTuple):
    """A collated batch.

    Attributes:
        images: float32 ``(B, C, S, S)`` in ``[0, 1]``.
        targets: float32 ``(M, 6)`` rows ``[image_index, class, cx, cy, w, h]`` normalised.
        infos: Per image, how it was letterboxed from the original (``None`` when augmented).
        paths: Per image, its file.
    """

    images: torch.Tensor
    targets: torch.Tensor
    infos: tuple[LetterboxInfo | None, ...]
    paths: tuple[str, ...]


Item = tuple[torch.Tensor, torch.Tensor, LetterboxInfo | None, str]


class _Samples:
    """The records decoded and resized to ``image_size``, as the augmentation source.

    With ``cache`` every image is decoded once, up front and on all cores, and kept in memory
    (float32, ``4 * image_size**2`` bytes per grayscale image); loader workers forked later
    share those pages instead of decoding four files for every mosaic.
    """

    def __init__(
        self, records: Sequence[DetectionRecord], image_size: int, cache: bool = False
    ) -> None:
        self.records, self.image_size = records, image_size
        self._cached: list[Sample] | None = None
        if cache:
            with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
                self._cached = list(pool.map(self._load, range(len(records))))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        return self._load(index) if self._cached is None else self._cached[index]

    def _load(self, index: int) -> Sample:
        return load_sample(self.records[index], self.image_size)[0]


class DetectionTrainData(Dataset[Item]):
    """Map-style dataset of ``(image (C, S, S), targets (n, 5), letterbox info, path)``.

    Targets are ``[class, cx, cy, w, h]`` normalised to the square side ``S``.

    Args:
        dataset: The records and class names.
        image_size: The square side ``S``.
        channels: Model input channels (grayscale repeated).
        augment: Augmentation settings for training; ``None`` letterboxes (validation).
        seed: Seed of the augmentation, combined with the epoch of an ``(epoch, index)`` key.
        pad_value: Letterbox padding intensity for validation items.
        cache: Decode the training images once and keep them in memory.

    Example:
        >>> data = DetectionTrainData(load_data_split("data.yaml", "val"), 64)  # doctest: +SKIP
        >>> image, targets, info, path = data[0]  # doctest: +SKIP
        >>> image.shape  # doctest: +SKIP
        torch.Size([3, 64, 64])
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        image_size: int,
        channels: int = 3,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        pad_value: float = 0.0,
        cache: bool = False,
    ) -> None:
        self.dataset = dataset
        self.image_size = image_size
        self.channels = channels
        self.seed = seed
        self.pad_value = pad_value
        self._source = _Samples(dataset.records, image_size, cache and augment is not None)
        self._augment = None
        if augment is not None:
            config = dataclasses.replace(augment, output_size=image_size)
            self._augment = build_augmentations(config)

    def __len__(self) -> int:
        return len(self.dataset.records)

    def __getitem__(self, key: int | tuple[int, int]) -> Item:
        """Item ``index`` (augmented as in epoch 0), or ``(epoch, index)`` from an EpochSampler."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.dataset.records[index]
        size = self.image_size
        info: LetterboxInfo | None = None
        if self._augment is None:
            pixels = read_image(record.image_path).pixels
            image, info = prepare_image(pixels, (size, size), self.channels, self.pad_value)
            boxes, labels = info.to_letterbox(record.boxes), record.labels
        else:
            rng = np.random.default_rng((self.seed, epoch, index))
            sample = self._augment(self._source, index, rng)
            image = ToChannels(self.channels)(sample.image)
            boxes, labels = sample.boxes, sample.labels
        targets = _normalised_targets(boxes, labels, size)
        return torch.from_numpy(image), targets, info, str(record.image_path)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` pairs from the indices (or sampler) that ``make(epoch)`` builds.

    Set the epoch with :meth:`set_epoch` before iterating; the sampler runs in the main process,
    so workers that outlive an epoch still augment with the right ``(seed, epoch, index)``.

    Example:
        >>> sampler = EpochSampler(lambda epoch: range(3))
        >>> sampler.set_epoch(2)
        >>> list(sampler)
        [(2, 0), (2, 1), (2, 2)]
    """

    def __init__(self, make: Callable[[int], Iterable[int]]) -> None:
        self.make = make
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the indices of ``epoch``."""
        self.epoch, self._indices = epoch, [int(index) for index in self.make(epoch)]

    def __len__(self) -> int:
        return len(self._indices)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in self._indices)


def _normalised_targets(boxes: NDArray[np.float32], labels: NDArray[np.int64], size: int) -> Any:
    boxes = np.clip(np.asarray(boxes, np.float32).reshape(-1, 4), 0, size)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (width > 0) & (height > 0)
    centre = (boxes[keep, :2] + boxes[keep, 2:]) / 2
    rows = np.concatenate(
        [
            np.asarray(labels, np.float32)[keep, None],
            centre / size,
            width[keep, None] / size,
            height[keep, None] / size,
        ],
        axis=1,
    )
    return torch.from_numpy(rows.astype(np.float32))


def collate_detection(items: Sequence[Item]) -> DetectionBatch:
    """Stack images and concatenate targets with their image index in front.

    Example:
        >>> item = (torch.zeros(3, 64, 64), torch.tensor([[1, .5, .5, .2, .2]]), None, "a.png")
        >>> collate_detection([item, item]).targets[:, 0].tolist()
        [0.0, 1.0]
    """
    images = torch.stack([item[0] for item in items])
    targets = [
        torch.cat((torch.full((len(item[1]), 1), float(i)), item[1]), dim=1)
        for i, item in enumerate(items)
    ]
    return DetectionBatch(
        images,
        torch.cat(targets) if targets else torch.zeros(0, 6),
        tuple(item[2] for item in items),
        tuple(item[3] for item in items),
    )


def inverse_frequency_sampler(dataset: DetectionDataset, seed: int = 0) -> WeightedRandomSampler:
    """A sampler that draws images with rare classes more often (with replacement).

    Example:
        >>> sampler = inverse_frequency_sampler(train_dataset)  # doctest: +SKIP
    """
    weights = inverse_frequency_image_weights(
        [record.labels for record in dataset.records], len(dataset.class_names)
    )
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        weights.tolist(), num_samples=len(weights), replacement=True, generator=generator
    )

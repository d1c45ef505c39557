"""K-fold cross-validation of the detector: honest model selection on a small data set.

All labelled images of a YOLO ``data.yaml`` (its train, val and test lists together, each
image once) are dealt into K folds, stratified by the rarest class in each image so that
every fold holds its share of the rare class. Fold ``k`` trains on the other folds and is
scored on fold ``k``, which it never saw: no image is in two folds, so the out-of-fold
predictions cover every image exactly once. Each fold model is the EMA weights of the last
epoch (``model_last/``): choosing an epoch on fold ``k`` would make its score optimistic.

:func:`prepare_folds` writes each fold's ``data.yaml`` (so the folds can also be trained
concurrently, see ``benchmarks/gpu_detector_folds.py``); :func:`summarize_folds` scores the
trained folds, keeps the out-of-fold boxes, and reports each metric per fold with the mean
and its 95 % t-interval over folds, and the pooled out-of-fold metrics with bootstrap
intervals over images.

Example:
    >>> folds = prepare_folds("tbx11k/data.yaml", 5, "runs/cv")  # doctest: +SKIP
    >>> [len(fold.val) for fold in folds]  # doctest: +SKIP
    [120, 120, 120, 120, 120]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from insightray.errors import ConfigError
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.data import load_data_split
from insightray.training.detection.datasets import DetectionRecord
from insightray.training.metrics import DetectionEvaluator

__all__ = [
    "Fold",
    "assign_folds",
    "mean_interval",
    "prepare_folds",
    "summarize_folds",
    "train_fold",
]

FOLDS_FILE = "folds.json"


@dataclass(frozen=True)
class Fold:
    """One fold: its index, its folder and the images it trains and is scored on."""

    index: int
    folder: Path
    train: tuple[Path, ...]
    val: tuple[Path, ...]

    @property
    def data(self) -> Path:
        """The fold's ``data.yaml``."""
        return self.folder / "data.yaml"

    @property
    def run(self) -> Path:
        """The fold's training run folder."""
        return self.folder / "run"


def assign_folds(records: Sequence[DetectionRecord], k: int, seed: int = 0) -> list[int]:
    """The fold of each record: shuffled, then dealt round-robin within strata.

    An image's stratum is the rarest class among its boxes (images without boxes form their
    own stratum), so each fold gets about ``1/k`` of the rare class's images.

    Raises:
        ConfigError: ``k`` is below 2 or above the number of images.

    Example:
        >>> records = [DetectionRecord(Path(f"{i}.png"), [[0, 0, 1, 1]], [i % 3 == 0])
        ...            for i in range(9)]
        >>> folds = assign_folds(records, 3)
        >>> sorted(folds.count(fold) for fold in range(3))
        [3, 3, 3]
        >>> sorted(folds[i] for i in range(0, 9, 3))  # the rare class, one image per fold
        [0, 1, 2]
    """
    if not 2 <= k <= len(records):
        raise ConfigError(
            f"--folds {k}",
            f"needs 2 to {len(records)} folds for {len(records)} images",
            "use e.g. 5",
        )
    counts = np.bincount(np.concatenate([r.labels for r in records] + [np.zeros(0, np.int64)]))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    strata: dict[int, list[int]] = {}
    for index in order:
        labels = records[index].labels
        rarest = -1 if len(labels) == 0 else int(min(labels, key=lambda c: (counts[c], c)))
        strata.setdefault(rarest, []).append(int(index))
    folds = [0] * len(records)
    dealt = 0
    for stratum in sorted(strata, key=lambda c: (counts[c] if c >= 0 else 0, c)):
        for index in strata[stratum]:
            folds[index] = dealt % k
            dealt += 1
    return folds


def _all_records(data: str | Path) -> tuple[list[DetectionRecord], list[str]]:
    records: dict[Path, DetectionRecord] = {}
    names: list[str] | None = None
    for split in ("train", "val", "test"):
        try:
            dataset = load_data_split(data, split)
        except ConfigError:
            if split == "test":
                continue  # data without a test split
            raise
        names = names or list(dataset.class_names)
        for record in dataset.records:
            records.setdefault(record.image_path.resolve(), record)
    assert names is not None
    return list(records.values()), names


def prepare_folds(data: str | Path, k: int, out: str | Path, seed: int = 0) -> list[Fold]:
    """Deal every labelled image of ``data`` into ``k`` folds; write each fold's lists.

    Writes ``out/fold<k>/{train.txt, val.txt, data.yaml}`` and ``out/folds.json``.

    Raises:
        ConfigError: ``data`` is not a YOLO ``data.yaml``, or ``k`` does not fit.
    """
    if not Path(data).is_file():
        raise ConfigError(str(data), "--folds needs a YOLO data.yaml file", "pass --data")
    records, names = _all_records(data)
    assigned = assign_folds(records, k, seed)
    root = Path(out)
    folds = []
    for index in range(k):
        folder = root / f"fold{index}"
        folder.mkdir(parents=True, exist_ok=True)
        val = tuple(
            r.image_path.resolve() for r, f in zip(records, assigned, strict=True) if f == index
        )
        train = tuple(
            r.image_path.resolve() for r, f in zip(records, assigned, strict=True) if f != index
        )
        for name, paths in (("train.txt", train), ("val.txt", val)):
            _write_if_changed(folder / name, "".join(f"{p}\n" for p in paths))
        spec = {
            "path": ".",
            "train": "train.txt",
            "val": "val.txt",
            "names": dict(enumerate(names)),
        }
        _write_if_changed(folder / "data.yaml", yaml.safe_dump(spec, sort_keys=False))
        folds.append(Fold(index, folder, train, val))
    summary = {
        "data": str(data),
        "k": k,
        "seed": seed,
        "images": len(records),
        "folds": [{"index": f.index, "train": len(f.train), "val": len(f.val)} for f in folds],
    }
    _write_if_changed(root / FOLDS_FILE, json.dumps(summary, indent=2) + "\n")
    return folds


def _write_if_changed(path: Path, text: str) -> None:
    """Concurrent fold trainers prepare the same folds: rewrite only what differs, atomically."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def train_fold(config: TrainConfig, fold: Fold, console: Any = None) -> Path:
    """Train one fold; return the card of its last-epoch EMA model (``run/model_last``)."""
    from insightray.models import load_card
    from insightray.training.detection.result import finish_run
    from insightray.training.detection.trainer import train_detector

    described = (
        f"cross-validation fold {fold.index}: trained on {len(fold.train)} images, "
        f"{len(fold.val)} held out ({fold.folder})"
    )
    fold_run = dataclasses.replace(
        config, data=str(fold.data.resolve()), out=str(fold.run), training_data=described
    )
    result = train_detector(fold_run, console=console)
    card = load_card(result.card_path)
    last = finish_run(
        fold_run,
        card.training_data,
        list(card.labels),
        fold.run,
        result.epochs_completed - 1,
        result.stopped_early,
        selection="last",
    )
    return last.card_path


def mean_interval(values: Sequence[float | None], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation and the t-interval of the mean over folds.

    Example:
        >>> summary = mean_interval([0.4, 0.5, 0.6])
        >>> round(summary["mean"], 3), [round(v, 3) for v in summary["ci95"]]
        (0.5, [0.252, 0.748])
    """
    from scipy import stats

    array = np.asarray([v for v in values if v is not None], np.float64)
    if len(array) == 0:
        return {"mean": None, "sd": None, "ci95": None, "folds": 0}
    mean = float(array.mean())
    if len(array) < 2:
        return {"mean": mean, "sd": None, "ci95": None, "folds": 1}
    sd = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(array) - 1)) * sd / math.sqrt(len(array))
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "folds": len(array)}


def _flat_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    flat = {key: metrics[key] for key in ("map40", "map50", "map50_95", "precision", "recall")}
    for row in metrics["per_class"]:
        flat[f"ap50/{row['name']}"] = row["ap50"]
        flat[f"ap50_95/{row['name']}"] = row["ap50_95"]
    return flat


def summarize_folds(
    folds: Sequence[Fold],
    *,
    model: str = "model_last",
    tta: bool = False,
    batch_size: int = 8,
    workers: int = 0,
    bootstrap: int = 1000,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score each fold's model on its held-out fold; pool the out-of-fold boxes.

    Writes ``<fold>/oof[_tta].json`` (every held-out image's boxes, scores and classes) and
    returns the per-fold metrics, each metric's mean with its 95 % t-interval over folds, and
    the pooled out-of-fold metrics with 95 % bootstrap intervals over images.

    Raises:
        InputNotFoundError: A fold has no trained model.
    """
    from insightray.engine import load_predictor
    from insightray.training.detection.evaluate import collect_detections
    from insightray.training.metrics.detection_ci import bootstrap_detection

    per_fold: list[dict[str, Any]] = []
    pooled: DetectionEvaluator | None = None
    for fold in folds:
        predictor = load_predictor(fold.run / model, task="detection", tta=tta, device=device)
        dataset = load_data_split(fold.data, "val")
        evaluator = collect_detections(predictor, dataset, batch_size=batch_size, workers=workers)
        metrics = evaluator.compute().to_dict()
        per_fold.append({"fold": fold.index, **metrics})
        _write_oof(fold.folder / f"oof{'_tta' if tta else ''}.json", evaluator)
        pooled = pooled or DetectionEvaluator(dataset.class_names)
        _pool_into(pooled, evaluator)
    assert pooled is not None
    flats = [_flat_metrics(m) for m in per_fold]
    summary = {key: mean_interval([f[key] for f in flats]) for key in flats[0]}
    oof = pooled.compute().to_dict()
    oof["ci95"] = bootstrap_detection(pooled, bootstrap).to_dict() if bootstrap else None
    return {"model": model, "tta": tta, "per_fold": per_fold, "mean": summary, "out_of_fold": oof}


def _write_oof(path: Path, evaluator: DetectionEvaluator) -> None:
    rows = [
        {
            "image": image_id,
            "boxes": np.round(boxes, 2).tolist(),
            "scores": np.round(scores, 5).tolist(),
            "classes": classes.tolist(),
        }
        for image_id, _, _, boxes, scores, classes in evaluator.items()
    ]
    path.write_text(json.dumps(rows) + "\n", encoding="utf-8")


def _pool_into(pooled: DetectionEvaluator, evaluator: DetectionEvaluator) -> None:
    for image_id, gt, gt_cls, boxes, scores, classes in evaluator.items():
        pooled.add(gt, gt_cls, boxes, scores, classes, image_id=image_id)

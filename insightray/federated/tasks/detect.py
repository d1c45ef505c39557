"""The chest X-ray detector as a federated task: YOLO-format images per site, server-side mAP@0.5.

Data: a YOLO ``data.yaml`` (TBX11K's, for instance). :meth:`DetectTask.split` deals its
``train`` images to sites and keeps its ``val`` images as the held-out ``test/`` folder (no
image is in two places). Non-IID, by image: each image's class is its most frequent box class
(ties: the lower class id; images without boxes form a class of their own), and each class's
images are dealt by Dirichlet shares around geometric site sizes
(:func:`~insightray.federated.sites.deal_classes`, the fracture split's code): ``size_skew``
sets the site sizes, ``label_skew`` how far the sites' class mixes differ. Each site folder
holds copies of its images and label files and its own ``data.yaml`` (``train`` and ``val``
both name its images: the format needs a ``val``; the site never validates).

Each round a site trains with the detector trainer's
:func:`~insightray.training.detection.steps.train_local_epochs`: its augmentation, YOLO loss,
SGD with warm-up and decay (one schedule over ``rounds * local_epochs`` epochs, so round R
continues where round R-1 stopped), a fresh optimiser, no EMA (a round is too short for one);
each batch is an optimiser step (nominal batch = batch size) so small sites still move.
FedProx adds its proximal term. The network is ``settings.detector`` from random weights with
the trainer's default anchors: AutoAnchor would fit each site's boxes differently, and
averaged anchors would fit none. Batch norm is averaged with every other weight by default
(``--fedbn`` keeps it local between rounds, as for fracture). Differential privacy is not
offered: the Gaussian noise would land on the anchors and strides too.

The coordinator's data (``--eval-data``, a ``data.yaml``) names the classes (sent to the
sites in the spec) and its ``val`` images are scored each round (mAP@0.5, confidence 0.001,
NMS IoU 0.6, as ``evaluate detect``); the final report adds 95 % bootstrap intervals over
images. The model folder is what ``insightray evaluate detect --model DIR`` and ``detect``
read.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from numpy.typing import NDArray
from torch import nn

from insightray.errors import ConfigError, InputError
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import SUMMARY_FILE, TEST_FOLDER, deal_classes
from insightray.federated.tasks.base import FederatedTask, LocalResult, Spec
from insightray.models import Lineage, ModelCard, Thresholds
from insightray.training.augment import AugmentConfig
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.datasets import DetectionDataset, DetectionRecord

__all__ = ["DATA_FILE", "DetectTask"]

DATA_FILE = "data.yaml"
CLASSES_KEY = "detect-classes"
#: Every augmentation stage off (``augment=False``).
NO_AUGMENT = AugmentConfig(mosaic=0.0, affine=0.0, flip=0.0, intensity=0.0)
#: Pooled precision and recall of the report are taken at this confidence.
REPORT_CONF = 0.25


def _config(settings: FederatedSettings, seed: int | None = None) -> TrainConfig:
    """The detector trainer's config for a run of ``rounds * local_epochs`` epochs."""
    return TrainConfig(
        model=settings.detector,
        image_size=settings.image_size,
        epochs=settings.rounds * settings.local_epochs,
        batch_size=settings.batch_size,
        nominal_batch=settings.batch_size,
        augment=AugmentConfig() if settings.augment else NO_AUGMENT,
        ema=False,
        amp=False,
        autoanchor=False,
        workers=0,
        device="cpu",
        seed=settings.seed if seed is None else seed,
    )


def _yaml(path: str | Path) -> Path:
    source = Path(path)
    return source / DATA_FILE if source.is_dir() else source


def _split(path: str | Path, split: str) -> DetectionDataset:
    from insightray.training.detection.data import load_data_split

    return load_data_split(_yaml(path), split)


def _image_class(record: DetectionRecord, classes: int) -> int:
    """The image's most frequent box class (ties: lower id); ``classes`` when it has none."""
    counts = Counter(int(label) for label in record.labels)
    return min(counts, key=lambda k: (-counts[k], k)) if counts else classes


def _write_folder(records: list[DetectionRecord], names: list[str], folder: Path) -> dict[str, Any]:
    """Copy images and label files into ``folder`` with its own ``data.yaml``; a summary."""
    from insightray.training.detection.datasets.yolo import label_path

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for record in records:
        target = folder / "images" / record.image_path.name
        if target.exists():
            raise InputError(str(record.image_path), "two images share a file name", "rename one")
        shutil.copyfile(record.image_path, target)
        labels = label_path(record.image_path)
        if labels.is_file():
            shutil.copyfile(labels, label_path(target))
    content = {"path": ".", "train": "images", "val": "images", "names": list(names)}
    (folder / DATA_FILE).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    per_class = Counter(names[int(k)] for r in records for k in set(r.labels.tolist()))
    return {
        "images": len(records),
        "boxes": sum(len(r) for r in records),
        "images_with": {name: per_class[name] for name in names},
    }


class DetectTask(FederatedTask):
    """Federated chest X-ray detection (see the module docstring)."""

    name = "detect"
    metric = "map50"
    metric_name = "mAP@0.5"
    needs_eval_data = True

    def model_spec(self, settings: FederatedSettings) -> Spec:
        from insightray.training.detection.datasets import load_data_config

        if not settings.eval_data:
            raise ConfigError(
                "federated detect",
                "the coordinator has no data.yaml to take the classes from",
                "give it one (--eval-data)",
            )
        names = load_data_config(_yaml(settings.eval_data)).class_names
        return {CLASSES_KEY: json.dumps(list(names))}

    def build_model(
        self, settings: FederatedSettings, spec: Mapping[str, Any], *, initial: bool = False
    ) -> nn.Module:
        from insightray.models import create_model
        from insightray.models.detection.yolo import YoloV5

        classes = json.loads(str(spec[CLASSES_KEY]))
        model = create_model(settings.detector, num_classes=len(classes), in_channels=3)
        if not isinstance(model, YoloV5):
            raise ConfigError(settings.detector, "is not a YOLOv5 detector", "use yolov5n")
        if initial:
            model.detect.initialise_biases(image_size=settings.image_size)
        return model

    def load_site(self, folder: str, settings: FederatedSettings, cache: str) -> Any:
        return _split(folder, "train")

    def train_local(
        self,
        model: nn.Module,
        data: Any,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        *,
        seed: int,
        proximal_mu: float,
    ) -> LocalResult:
        from insightray.training.detection.steps import train_local_epochs

        classes = json.loads(str(spec[CLASSES_KEY]))
        if list(data.class_names) != classes:
            raise InputError(
                "site data.yaml",
                f"names {data.class_names}, the coordinator's {classes}",
                "use the coordinator's class names in this order",
            )
        server_round = max(int(spec.get("server_round", 1)), 1)
        first = min(server_round - 1, settings.rounds - 1) * settings.local_epochs
        fit = train_local_epochs(
            model,  # type: ignore[arg-type]
            _config(settings, seed),
            data,
            first_epoch=first,
            epochs=settings.local_epochs,
            proximal_mu=proximal_mu,
        )
        return LocalResult(fit.steps, fit.images, fit.loss)

    def scorer(
        self,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        path: str,
        cache: Path,
        *,
        full: bool = False,
    ) -> Callable[[nn.Module], dict[str, Any]]:
        from insightray.training.detection.evaluate import collect_detections
        from insightray.training.metrics.detection_ci import bootstrap_detection

        dataset = _split(path, "val")
        config = _config(settings)

        def score(model: nn.Module) -> dict[str, Any]:
            evaluator = collect_detections(
                model,
                dataset,
                config.image_size,
                batch_size=config.batch_size,
                pad_value=config.augment.border_value,
            )
            metrics = evaluator.compute(conf_threshold=REPORT_CONF)
            report: dict[str, Any] = {
                "map50": metrics.map50 or 0.0,
                "map50_95": metrics.map50_95 or 0.0,
            }
            if full:
                intervals = bootstrap_detection(evaluator)
                report |= {
                    "map50_ci": list(intervals.map50 or (0.0, 0.0)),
                    "map50_95_ci": list(intervals.map50_95 or (0.0, 0.0)),
                    "precision": metrics.precision,
                    "recall": metrics.recall,
                    "images": len(dataset),
                }
            return report

        return score

    def split(
        self, data: Path, sites: int, out: Path, *, label_skew: float, size_skew: float, seed: int
    ) -> None:
        if (out / SUMMARY_FILE).exists():
            raise ConfigError(str(out), "already holds a site split", "choose an empty --out")
        train, held_out = _split(data, "train"), _split(data, "val")
        names = list(train.class_names)
        by_path = {str(r.image_path): r for r in train.records}
        classes: list[list[str]] = [[] for _ in range(len(names) + 1)]
        for path, record in by_path.items():
            classes[_image_class(record, len(names))].append(path)
        dealt = deal_classes(
            [members for members in classes if members],
            sites,
            label_skew=label_skew,
            size_skew=size_skew,
            seed=seed,
        )
        summary: dict[str, Any] = {"task": self.name, "source": str(data), "sites": []}
        for index, paths in enumerate(dealt):
            records = [by_path[p] for p in sorted(paths)]
            summary["sites"].append(_write_folder(records, names, out / f"site_{index}"))
        summary["test"] = _write_folder(list(held_out.records), names, out / TEST_FOLDER)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    def site_size(self, folder: Path) -> int:
        return len(_split(folder, "train").records)

    def evaluation_data(self, split: Path) -> tuple[Path | None, Path | None]:
        test = split / TEST_FOLDER / DATA_FILE
        return (test, test) if test.is_file() else (None, None)

    def write_model(
        self,
        out: Path,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        arrays: list[NDArray[Any]],
        lineage: dict[str, Any],
        training_data: str,
        metrics: dict[str, float],
    ) -> ModelCard:
        from insightray.engine.weights import write_model
        from insightray.federated.site import batch_norm_mode, set_arrays, shared_keys
        from insightray.training.detection.result import detection_preprocessing

        model = self.build_model(settings, spec)
        set_arrays(model, shared_keys(model), arrays)
        config = _config(settings)
        card = ModelCard(
            name=settings.detector,
            task="detection",
            version="0.1.0",
            labels=tuple(json.loads(str(spec[CLASSES_KEY]))),
            input_size=(settings.image_size, settings.image_size),
            preprocessing=detection_preprocessing(config, {}),
            thresholds=Thresholds(confidence=config.conf_threshold, iou=config.iou_threshold),
            lineage=Lineage(
                "federated",
                None,
                settings={**lineage, "batch_norm": batch_norm_mode(settings)},
                data=training_data,
            ),
            training_data=training_data,
            metrics=dict(metrics),
            notes=(
                f"Federated {settings.strategy} over {lineage['sites']} sites, "
                f"{settings.rounds} rounds of {settings.local_epochs} local epoch(s) of the "
                f"detector trainer at {settings.image_size} px, from random weights; the "
                "last round's global weights, no selection. Research use only."
            ),
        )
        return write_model(out, model.eval(), card)

    def test_metrics(self, report: dict[str, Any]) -> dict[str, float]:
        return {
            "test_map50": float(report["map50"]),
            "test_map50_ci_low": float(report["map50_ci"][0]),
            "test_map50_ci_high": float(report["map50_ci"][1]),
            "test_map50_95": float(report["map50_95"]),
        }

    def describe(self, report: dict[str, Any]) -> str:
        low, high = report["map50_ci"]
        return f"test mAP@0.5 {report['map50']:.4f} [{low:.4f}, {high:.4f}]"

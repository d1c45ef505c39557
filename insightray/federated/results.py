"""Turn a finished run (``global.npz`` + ``rounds.json``) into a model folder, metrics and a plot.

:func:`write_federated_model` writes ``model/`` through the run's task (weights + a typed
:class:`~insightray.models.ModelCard` whose lineage is ``federated`` and records the strategy,
rounds, sites and the privacy budget spent), so ``insightray evaluate fracture --model
DIR/model`` (or ``evaluate ner``) scores it. :func:`plot_rounds` draws each round's
server-side score and mean site loss to PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from insightray.federated.settings import FederatedSettings
from insightray.models import (
    ModelCard,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "federated_lineage",
    "global_model",
    "load_global",
    "plot_rounds",
    "read_rounds",
    "read_spec",
    "write_federated_model",
]


def read_rounds(folder: Path) -> dict[str, Any]:
    """The server's ``rounds.json``."""
    data: dict[str, Any] = json.loads((folder / "rounds.json").read_text(encoding="utf-8"))
    return data


def load_global(folder: Path) -> list[NDArray[Any]]:
    """The server's final arrays (``global.npz``), in order."""
    with np.load(folder / "global.npz") as archive:
        return [archive[f"arr_{index}"] for index in range(len(archive.files))]


def global_model(settings: FederatedSettings, folder: Path) -> nn.Module:
    """The task's network with the server's final arrays in ``folder`` loaded."""
    from insightray.federated.site import set_arrays, shared_keys
    from insightray.federated.tasks import get_task

    model = get_task(settings.task).build_model(settings, read_spec(folder))
    set_arrays(model, shared_keys(model), load_global(folder))
    return model


def read_spec(folder: Path) -> dict[str, Any]:
    """The task's spec the server sent to the sites (``spec.json``; empty if none)."""
    path = folder / "spec.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def federated_lineage(settings: FederatedSettings, rounds: dict[str, Any]) -> dict[str, Any]:
    """The card's lineage settings: strategy, rounds, sites and the privacy budget spent."""
    return {
        "task": settings.task,
        "strategy": settings.strategy,
        "proximal_mu": settings.mu if settings.strategy == "fedprox" else 0.0,
        "rounds": settings.rounds,
        "rounds_skipped": [r["round"] for r in rounds["rounds"] if r["skipped"]],
        "sites": rounds["sites"],
        "fraction_sampled": settings.fraction,
        "min_sites": settings.min_sites,
        "local_epochs": settings.local_epochs,
        "secure_aggregation": "SecAgg+" if settings.secagg else "none",
        "dp_noise_multiplier": settings.dp_noise,
        "dp_clipping_norm": settings.dp_clip,
        "dp_epsilon": rounds["epsilon"] if settings.private else None,
        "dp_delta": rounds["delta"],
        "dp_unit": "site (client-level DP, central noise)" if settings.private else None,
        "engine": "Flower deployment engine",
    }


def write_federated_model(
    out: Path,
    settings: FederatedSettings,
    rounds: dict[str, Any],
    training_data: str,
    metrics: dict[str, float] | None = None,
) -> ModelCard:
    """Write ``out``, the task's model folder, from the final arrays in ``settings.out``."""
    from insightray.federated.tasks import get_task

    server = Path(settings.out)
    return get_task(settings.task).write_model(
        out,
        settings,
        read_spec(server),
        load_global(server),
        federated_lineage(settings, rounds),
        training_data,
        dict(metrics or {}),
    )


def plot_rounds(rounds: dict[str, Any], path: Path) -> Path:
    """Per-round server-side score (AUC or entity F1) and mean site training loss, to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = rounds["rounds"]
    metric = rounds.get("metric", "auc")
    initial = rounds.get(f"initial_eval_{metric}")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    points = [(0, initial)] if initial is not None else []
    key = f"eval_{metric}"
    points += [(r["round"], r[key]) for r in records if r.get(key) is not None]
    if points:
        left.plot(*zip(*points, strict=True), marker="o")
    label = {
        "auc": "held-out AUC",
        "f1": "entity F1 (coordinator)",
        "map50": "held-out mAP@0.5",
    }.get(metric, metric)
    left.set(xlabel="round", ylabel=label, title="global model")
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

"""``federated simulate``: every site and the coordinator on one machine, over loopback.

Not Flower's Ray simulation (too heavy for small machines): the real deployment engine, a
SuperLink and one SuperNode per site as separate processes on loopback, so a simulation runs
exactly the code and the protocol of a multi-hospital deployment.

Example:
    >>> result = simulate("bone_fracture_roboflow", FederatedSettings(rounds=3), sites=3,
    ...                   out="runs/federated")  # doctest: +SKIP
    >>> result.card_path  # doctest: +SKIP
    PosixPath('runs/federated/model/card.json')
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from insightray.errors import ConfigError, FederatedRunError
from insightray.federated.deployment import SuperLink, SuperNode, free_port, submit_run
from insightray.federated.results import (
    plot_rounds,
    read_rounds,
    write_federated_model,
)
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import SUMMARY_FILE, TEST_FOLDER, assign_sites, site_folders
from insightray.federated.sites import write_sites as write_site_folders
from insightray.training.fracture.dataset import load_fracture_items

__all__ = ["FederatedResult", "prepare_sites", "simulate"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class FederatedResult:
    """What a simulation produced.

    Attributes:
        card_path: The global model's card.
        rounds: The server's per-round records (``rounds.json``).
        test: Held-out test evaluation of the final model (``None`` without a test folder).
        seconds: Wall-clock time.
    """

    card_path: Path
    rounds: dict[str, Any]
    test: dict[str, Any] | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``metrics.json``)."""
        return {
            "card": str(self.card_path),
            "seconds": round(self.seconds, 1),
            "test": self.test,
            **self.rounds,
        }


def prepare_sites(
    data: str | Path,
    sites: int,
    out: Path,
    *,
    label_skew: float = 0.5,
    size_skew: float = 0.5,
    seed: int = 0,
) -> Path:
    """A folder of site splits: ``data`` itself if it is one, else a fresh split in ``out``."""
    source = Path(data)
    if (source / SUMMARY_FILE).is_file():
        if len(site_folders(source)) != sites:
            raise ConfigError(str(source), "holds a different number of sites", "match --sites")
        return source
    plan = assign_sites(
        load_fracture_items(source), sites, label_skew=label_skew, size_skew=size_skew, seed=seed
    )
    write_site_folders(plan, out)
    return out


def simulate(
    data: str | Path,
    settings: FederatedSettings,
    *,
    sites: int,
    out: str | Path,
    label_skew: float = 0.5,
    size_skew: float = 0.5,
    log: Log = print,
) -> FederatedResult:
    """Split ``data`` into sites (unless it is a split), run the federation, write the model.

    Raises:
        FederatedRunError: A Flower process failed or the run did not finish.
        ConfigError: Invalid settings.
    """
    started = time.perf_counter()
    root = Path(out)
    split = prepare_sites(
        data, sites, root / "sites", label_skew=label_skew, size_skew=size_skew, seed=settings.seed
    )
    test = split / TEST_FOLDER
    largest = max(len(load_fracture_items(folder)) for folder in site_folders(split))
    settings = dataclasses.replace(
        settings,
        max_site_images=largest,
        out=str((root / "server").resolve()),
        eval_data=str(test.resolve()) if test.is_dir() else "",
    )
    home = root / "flower"
    link = SuperLink(home, port=free_port())
    log(f"SuperLink {link.address} (pid {link.pid}); starting {sites} SuperNodes")
    nodes = []
    try:
        for index, folder in enumerate(site_folders(split)):
            node_config: dict[str, str | int] = {
                "data": str(folder.resolve()),
                "cache": str((root / "cache" / folder.name).resolve()),
                "seed": index,
                "threads": 1,
            }
            nodes.append(
                SuperNode(home, link.address, node_config, port=free_port(), name=folder.name)
            )
        run_config = {**settings.to_run_config(), "sites": sites}
        log(f"run: {settings.strategy}, {settings.rounds} rounds; log {home / 'run.log'}")
        submit_run(home, link.address, run_config)
    finally:
        for node in nodes:
            node.stop()
        link.stop()
    server = Path(settings.out)
    if not (server / "global.npz").is_file():
        raise FederatedRunError("the run", "ended without a global model", f"see {home}/*.log")
    rounds = read_rounds(server)
    test_report = _evaluate_test(test, settings, server) if test.is_dir() else None
    metrics = {}
    if test_report is not None:
        metrics = {
            "test_auc": test_report["auc"],
            "test_auc_ci_low": test_report["auc_ci"][0],
            "test_auc_ci_high": test_report["auc_ci"][1],
        }
    card = write_federated_model(
        root / "model",
        settings,
        rounds,
        training_data=f"{sites} sites split by source group from {Path(data).name}",
        metrics=metrics,
    )
    del card
    plot_rounds(rounds, root / "rounds.png")
    result = FederatedResult(root / "model" / "card.json", rounds, test_report, 0.0)
    result = dataclasses.replace(result, seconds=time.perf_counter() - started)
    (root / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _evaluate_test(test: Path, settings: FederatedSettings, server: Path) -> dict[str, Any]:
    import torch

    from insightray.federated.results import load_global
    from insightray.federated.site import set_arrays, shared_keys
    from insightray.training.fracture import build_classifier, evaluate_scores, load_prepared
    from insightray.training.fracture.trainer import predict_prepared

    config = settings.train_config()
    model = build_classifier(dataclasses.replace(config, pretrained=False))
    set_arrays(model, shared_keys(model), load_global(server))
    items = load_fracture_items(test)
    images = load_prepared(items, config.preprocessing, config.image_size, server / "cache")
    labels = np.array([item.label for item in items], dtype=np.int64)
    scores = predict_prepared(model, images, torch.device("cpu"))
    report = evaluate_scores(labels, scores, threshold=0.5, groups=[i.group for i in items])
    return report.to_dict()

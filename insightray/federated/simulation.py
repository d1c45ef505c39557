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

from insightray.errors import ConfigError, FederatedRunError
from insightray.federated.deployment import SuperLink, SuperNode, free_port, submit_run
from insightray.federated.results import (
    global_model,
    plot_rounds,
    read_rounds,
    read_spec,
    write_federated_model,
)
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import SUMMARY_FILE, site_folders
from insightray.federated.tasks import get_task

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
    task: str = "fracture",
) -> Path:
    """A folder of site splits: ``data`` itself if it is one, else a fresh split in ``out``."""
    source = Path(data)
    if (source / SUMMARY_FILE).is_file():
        if len(site_folders(source)) != sites:
            raise ConfigError(str(source), "holds a different number of sites", "match --sites")
        return source
    get_task(task).split(source, sites, out, label_skew=label_skew, size_skew=size_skew, seed=seed)
    return out


def _data_name(data: Path) -> str:
    """The data's name for the card: a folder's, or a data.yaml's folder."""
    return data.parent.name if data.is_file() else data.name


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

    The task is ``settings.task``: ``data`` is a labelled image folder for fracture, a CoNLL
    corpus folder (``train.tsv``, ``devel.tsv``, ``test.tsv``) for NER, a YOLO ``data.yaml``
    for detect.

    Raises:
        FederatedRunError: A Flower process failed or the run did not finish.
        ConfigError: Invalid settings.
    """
    started = time.perf_counter()
    task = get_task(settings.task)
    root = Path(out)
    split = prepare_sites(
        data,
        sites,
        root / "sites",
        label_skew=label_skew,
        size_skew=size_skew,
        seed=settings.seed,
        task=settings.task,
    )
    evaluation, test = task.evaluation_data(split)
    largest = max(task.site_size(folder) for folder in site_folders(split))
    settings = dataclasses.replace(
        settings,
        max_site_images=largest,
        out=str((root / "server").resolve()),
        eval_data=str(evaluation.resolve()) if evaluation is not None else "",
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
        log(f"run: {settings.task} {settings.strategy}, {settings.rounds} rounds; {home}/run.log")
        submit_run(home, link.address, run_config)
    finally:
        for node in nodes:
            node.stop()
        link.stop()
    server = Path(settings.out)
    if not (server / "global.npz").is_file():
        raise FederatedRunError("the run", "ended without a global model", f"see {home}/*.log")
    rounds = read_rounds(server)
    test_report = None
    if test is not None:
        score = task.scorer(settings, read_spec(server), str(test), server / "cache", full=True)
        test_report = score(global_model(settings, server))
    write_federated_model(
        root / "model",
        settings,
        rounds,
        training_data=f"{sites} sites split from {_data_name(Path(data))}",
        metrics=task.test_metrics(test_report) if test_report is not None else {},
    )
    plot_rounds(rounds, root / "rounds.png")
    result = FederatedResult(root / "model" / "card.json", rounds, test_report, 0.0)
    result = dataclasses.replace(result, seconds=time.perf_counter() - started)
    (root / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result

"""Federated vs pooled vs local-only fracture training on non-IID sites, same total budget.

The Roboflow bone-fracture set is split by source group into ``--sites`` non-IID sites plus
a held-out test set (``insightray federated split``'s code). Every arm starts from the same
ImageNet EfficientNet-Lite0 and gets ``rounds * local_epochs`` passes over its data:

- pooled: all sites' images together, trained centrally;
- local-only: each site alone (the table reports each site and their mean);
- FedAvg, FedProx: Flower's deployment engine (SuperLink + SuperNodes on loopback);
- FedAvg + DP at two noise multipliers (client clipping, central Gaussian noise), with the
  epsilon spent at delta = 1e-3.

Recipe choices (FedBN or shared batch norm) are made with ``--select`` first, never on the test
split: each site holds out a stratified fifth of its own source groups as its validation, the
sites train on the rest, and the union of the sites' validations scores pooled training and
FedAvg with either batch-norm mode (``select.json``). The main arms then run with the chosen
``--batch-norm``.

All arms use the fracture trainer's :func:`~insightray.training.fracture.steps.
train_local_epochs` (the federated sites call the same function). Reported: held-out test
ROC AUC with a 95 % group-bootstrap interval, and epsilon.

Usage:
    python benchmarks/bench_federated.py --sites 3 --select --out runs/bench_fl
    python benchmarks/bench_federated.py --sites 3 --batch-norm shared --out runs/bench_fl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insightray.config import data_root
from insightray.federated.results import global_model
from insightray.federated.settings import FederatedSettings
from insightray.federated.simulation import prepare_sites, simulate
from insightray.federated.sites import (
    SUMMARY_FILE,
    TEST_FOLDER,
    SitePlan,
    site_folders,
    write_sites,
)
from insightray.training.fracture import (
    build_classifier,
    evaluate_scores,
    load_prepared,
    train_local_epochs,
)
from insightray.training.fracture.dataset import (
    FractureItem,
    load_fracture_items,
    split_by_group,
)
from insightray.training.fracture.trainer import predict_prepared
from insightray.training.metrics.roc import bootstrap_auc_difference
from insightray.training.runtime import seed_everything


def _cpu_flags() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    flags = sorted({w for w in text.split() if w.startswith(("avx", "amx"))})
    return " ".join(flags)


def _test_auc(
    model: torch.nn.Module, test: list[FractureItem], size: int, save: Path
) -> dict[str, Any]:
    """Held-out AUC with its group-bootstrap interval; the scores are kept in ``save``."""
    config = FederatedSettings(image_size=size).train_config()
    images = load_prepared(test, config.preprocessing, size)
    labels = np.array([item.label for item in test], dtype=np.int64)
    scores = predict_prepared(model, images, torch.device("cpu"))
    save.parent.mkdir(parents=True, exist_ok=True)
    np.save(save, scores)
    report = evaluate_scores(labels, scores, threshold=0.5, groups=[i.group for i in test])
    return {"auc": report.auc, "auc_ci": list(report.auc_ci)}


def _central(
    items: list[FractureItem],
    settings: FederatedSettings,
    test: list[FractureItem],
    cache: Path,
    save: Path,
) -> dict[str, Any]:
    """Train on ``items`` alone for the same number of passes a federated site gets."""
    seed_everything(settings.seed)
    config = settings.train_config()
    model = build_classifier(config).to(memory_format=torch.channels_last)
    images = load_prepared(items, config.preprocessing, config.image_size, cache)
    labels = np.array([item.label for item in items], dtype=np.int64)
    started = time.perf_counter()
    for _ in range(settings.rounds):  # one cosine cycle per "round", as a site does
        train_local_epochs(
            model, config, images, labels, torch.device("cpu"), epochs=settings.local_epochs
        )
    return {
        **_test_auc(model, test, settings.image_size, save),
        "images": len(items),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _global_scores(
    settings: FederatedSettings, out: Path, test: list[FractureItem], save: Path
) -> None:
    """Score the test split with the global model a federated arm wrote in ``out``."""
    _test_auc(global_model(settings, out / "server"), test, settings.image_size, save)


def _paired(test: list[FractureItem], scores: Path) -> dict[str, list[float]]:
    """Each arm's AUC minus pooled training's, paired group bootstrap on the same images."""
    labels = np.array([item.label for item in test], dtype=np.int64)
    groups = [item.group for item in test]
    if not (scores / "pooled.npy").is_file():
        return {}  # pooled training has not run (yet) in this folder
    pooled = np.load(scores / "pooled.npy")
    return {
        path.stem: [
            round(v, 4)
            for v in bootstrap_auc_difference(labels, np.load(path), pooled, groups=groups)
        ]
        for path in sorted(scores.glob("*.npy"))
        if path.stem != "pooled"
    }


def _by_group(items: list[FractureItem]) -> dict[str, list[FractureItem]]:
    groups: dict[str, list[FractureItem]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    return groups


def _selection_split(split: Path, out: Path, seed: int) -> Path:
    """The sites minus a fifth of each site's groups; those fifths, pooled, as ``test/``."""
    if (out / SUMMARY_FILE).is_file():
        return out
    sites, validation = [], {}
    for folder in site_folders(split):
        parts = split_by_group(
            load_fracture_items(folder), val_fraction=0.2, test_fraction=0.0, seed=seed
        )
        sites.append(_by_group(parts.train))
        validation.update(_by_group(parts.val))
    write_sites(SitePlan(sites, validation), out)
    return out


def _select(split: Path, base: FederatedSettings, out: Path) -> dict[str, Any]:
    """Pooled and FedAvg with FedBN or shared batch norm, scored on the sites' validations."""
    chosen = _selection_split(split, out / "sites", seed=1)
    validation = load_fracture_items(chosen / TEST_FOLDER)
    pooled = [i for folder in site_folders(chosen) for i in load_fracture_items(folder)]
    return {
        "pooled": _central(
            pooled, base, validation, out / "cache" / "pooled", out / "scores" / "pooled.npy"
        ),
        **{
            f"fedavg-{mode}": _federated(
                chosen, dataclasses.replace(base, local_bn=mode == "fedbn"), out / mode
            )
            for mode in ("fedbn", "shared")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--dp-clip", type=float, default=1.0)
    parser.add_argument("--dp-noise", type=float, nargs=2, default=[0.1, 1.0])
    parser.add_argument("--arms", nargs="*", default=[])
    parser.add_argument("--batch-norm", choices=("fedbn", "shared"), default="fedbn")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Training seed (shuffling, augmentation); the split's is 0.",
    )
    parser.add_argument("--select", action="store_true", help="Choose --batch-norm first.")
    parser.add_argument(
        "--paired-only",
        action="store_true",
        help="Add the paired differences to an earlier run's results (scores its global models).",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench_federated"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = data_root() / "fracture" / "bone_fracture_roboflow"
    args.out.mkdir(parents=True, exist_ok=True)
    split = args.out / "sites"  # the split a resumed run already made, or a fresh one
    if not (split / SUMMARY_FILE).is_file():
        split = prepare_sites(data, args.sites, split, seed=0)
    test = load_fracture_items(split / TEST_FOLDER)
    sites = [load_fracture_items(folder) for folder in site_folders(split)]
    base = FederatedSettings(
        rounds=args.rounds,
        local_epochs=args.local_epochs,
        image_size=args.image_size,
        local_bn=args.batch_norm == "fedbn",
        seed=args.seed,
    )
    if args.select:
        selection = _select(split, base, args.out / "select")
        (args.out / "select.json").write_text(json.dumps(selection, indent=2) + "\n")
        print(json.dumps(selection, indent=2))
        return
    results_path = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["machine"] = {"cpu_flags": _cpu_flags(), "python": platform.python_version()}
    results["batch_norm"] = args.batch_norm
    results["seed"] = args.seed
    scores = args.out / "scores"
    federated = {
        "fedavg": base,
        "fedprox": dataclasses.replace(base, strategy="fedprox", mu=0.01),
        **{
            f"fedavg-dp-z{noise:g}": dataclasses.replace(base, dp_clip=args.dp_clip, dp_noise=noise)
            for noise in args.dp_noise
        },
    }
    arms: dict[str, Any] = {
        "pooled": lambda: _central(
            [i for s in sites for i in s],
            base,
            test,
            args.out / "cache" / "pooled",
            scores / "pooled.npy",
        ),
        "local-only": lambda: {
            f"site_{k}": _central(
                items, base, test, args.out / "cache" / f"site_{k}", scores / f"site_{k}.npy"
            )
            for k, items in enumerate(sites)
        },
        **{
            name: lambda n=name, s=settings: _federated(split, s, args.out / n)
            for name, settings in federated.items()
        },
    }
    for name, run in arms.items():
        if args.arms and name not in args.arms:
            continue
        if args.paired_only:  # score what an earlier run trained (central arms train again)
            if name not in results:
                continue
            if name in federated:
                _global_scores(federated[name], args.out / name, test, scores / f"{name}.npy")
                continue
            if (scores / ("pooled.npy" if name == "pooled" else "site_0.npy")).is_file():
                continue
        started = time.perf_counter()
        results[name] = run()
        results[name + "_wall_s"] = round(time.perf_counter() - started, 1)
        if name in federated:
            _global_scores(federated[name], args.out / name, test, scores / f"{name}.npy")
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(name, json.dumps(results[name]), flush=True)
    results["auc_minus_pooled"] = _paired(test, scores)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print("AUC minus pooled [95 % CI]", json.dumps(results["auc_minus_pooled"]), flush=True)


def _federated(split: Path, settings: FederatedSettings, out: Path) -> dict[str, Any]:
    result = simulate(split, settings, sites=len(site_folders(split)), out=out)
    assert result.test is not None
    return {
        "auc": result.test["auc"],
        "auc_ci": result.test["auc_ci"],
        "epsilon": result.rounds["epsilon"],
        "delta": result.rounds["delta"],
        "rounds_skipped": sum(r["skipped"] for r in result.rounds["rounds"]),
        "seconds": round(result.seconds, 1),
    }


if __name__ == "__main__":
    main()

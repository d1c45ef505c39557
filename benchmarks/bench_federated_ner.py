"""Federated vs pooled vs local-only NER training on non-IID sites, same total budget.

NCBI-disease's ``train.tsv`` is split into ``--sites`` sites by ``insightray federated split
--task ner``'s code (contiguous sentence blocks, so sites see different abstracts; geometric
size skew 0.5); the coordinator keeps ``devel.tsv`` (the vocabulary's source, and the
per-round score) and ``test.tsv`` is held out. Every arm builds the same BiLSTM-CRF on the
coordinator's vocabulary and gets ``rounds * local_epochs`` passes over its data with the
NER trainer's :func:`~insightray.training.ner.trainer.train_local_epochs` (one call per
"round", a fresh optimiser each time, as a federated site does):

- pooled: all sites' sentences together, trained centrally;
- local-only: each site alone (each site and their mean are reported);
- FedAvg and FedProx (mu 0.01): Flower's deployment engine (SuperLink + SuperNodes on
  loopback), through ``insightray federated simulate``'s code.

Reported: exact-span entity F1 on the held-out test split with a 95 % percentile bootstrap
interval over test sentences (micro F1 recomputed from resampled per-sentence counts), and
each arm's F1 minus pooled training's, paired on the same resamples. Nothing is tuned here:
every arm uses the same fixed recipe, and the test split is scored once per arm at the end.

Usage:
    python benchmarks/bench_federated_ner.py --sites 3 --rounds 4 --out runs/bench_fl_ner
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.config import data_root
from insightray.engine.ner import LoadedNer, load_ner_model, predict_tags
from insightray.federated.settings import FederatedSettings
from insightray.federated.simulation import prepare_sites, simulate
from insightray.federated.sites import SUMMARY_FILE, site_folders
from insightray.federated.tasks import get_task
from insightray.models.text.ner_encoding import TaggedSentence, bio_spans
from insightray.training.ner.conll import read_conll
from insightray.training.ner.trainer import NerTrainConfig, build_tagger, train_local_epochs
from insightray.training.runtime import seed_everything

RESAMPLES = 2000


def _cpu_flags() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return " ".join(sorted({w for w in text.split() if w.startswith(("avx", "amx"))}))


def _counts(gold: list[TaggedSentence], predicted: list[list[str]]) -> NDArray[np.int64]:
    """Per sentence: gold spans, predicted spans, exactly matching spans."""
    rows = []
    for sentence, tags in zip(gold, predicted, strict=True):
        truth, guess = set(bio_spans(sentence.tags)), set(bio_spans(tags))
        rows.append((len(truth), len(guess), len(truth & guess)))
    return np.array(rows, dtype=np.int64)


def _f1(counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Micro F1 ``2C / (G + P)`` of summed counts (last axis: gold, predicted, correct)."""
    gold, predicted, correct = counts[..., 0], counts[..., 1], counts[..., 2]
    total = gold + predicted
    return np.where(total > 0, 2 * correct / np.maximum(total, 1), 0.0)


def _bootstrap(counts: dict[str, NDArray[np.int64]], seed: int = 0) -> dict[str, Any]:
    """F1 and its interval per arm; F1 minus pooled's on the same resampled sentences."""
    n = next(iter(counts.values())).shape[0]
    draws = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    resampled = {arm: _f1(c[draws].sum(axis=1)) for arm, c in counts.items()}
    report: dict[str, Any] = {}
    for arm, values in resampled.items():
        entry = {
            "f1": round(float(_f1(counts[arm].sum(axis=0))), 4),
            "f1_ci": [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])],
        }
        if arm != "pooled" and "pooled" in resampled:
            delta = values - resampled["pooled"]
            point = _f1(counts[arm].sum(axis=0)) - _f1(counts["pooled"].sum(axis=0))
            entry["minus_pooled"] = round(float(point), 4)
            entry["minus_pooled_ci"] = [
                round(float(v), 4) for v in np.percentile(delta, [2.5, 97.5])
            ]
        report[arm] = entry
    return report


def _central(
    sentences: list[TaggedSentence],
    settings: FederatedSettings,
    spec: dict[str, Any],
    test: list[TaggedSentence],
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Train on ``sentences`` alone for the passes a federated site gets; test counts."""
    from insightray.federated.tasks.ner import VOCAB_KEY
    from insightray.models.text.ner_encoding import NerVocab

    seed_everything(settings.seed)
    vocab = NerVocab.from_dict(json.loads(str(spec[VOCAB_KEY])))
    config = NerTrainConfig(batch_size=settings.batch_size, lr=settings.lr, progress=False)
    tagger = build_tagger(vocab, config)
    started = time.perf_counter()
    for round_ in range(1, settings.rounds + 1):  # a fresh optimiser per "round", as a site
        seed = settings.seed * 1000 + round_ * 17
        train_local_epochs(
            tagger.model,
            tagger.encoder,
            sentences,
            dataclasses.replace(config, seed=seed),
            epochs=settings.local_epochs,
        )
    tagger.model.eval()
    counts = _counts(test, predict_tags(tagger, [s.words for s in test]))
    return counts, {"sentences": len(sentences), "seconds": round(time.perf_counter() - started)}


def _federated(
    split: Path, settings: FederatedSettings, out: Path, test: list[TaggedSentence]
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Run the federation; score its model folder (as ``evaluate ner --model`` loads it)."""
    result = simulate(split, settings, sites=len(site_folders(split)), out=out)
    loaded: LoadedNer = load_ner_model(result.card_path)
    counts = _counts(test, predict_tags(loaded, [s.words for s in test]))
    rounds = [r.get("eval_f1") for r in result.rounds["rounds"]]
    return counts, {"seconds": round(result.seconds), "devel_f1_per_round": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="*", default=[])
    parser.add_argument("--data", type=Path, default=data_root() / "text" / "ner" / "ncbi_disease")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_federated_ner"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    split = args.out / "sites"
    if not (split / SUMMARY_FILE).is_file():
        split = prepare_sites(args.data, args.sites, split, seed=0, task="ner")
    task = get_task("ner")
    devel, test_path = task.evaluation_data(split)
    assert devel is not None and test_path is not None
    test = read_conll(test_path)
    settings = FederatedSettings(
        task="ner",
        rounds=args.rounds,
        local_epochs=args.local_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_data=str(devel.resolve()),
    )
    spec = dict(task.model_spec(settings))
    sites = [read_conll(folder / "train.tsv") for folder in site_folders(split)]
    arms: dict[str, Callable[[], tuple[NDArray[np.int64], dict[str, Any]]]] = {
        "pooled": lambda: _central([s for site in sites for s in site], settings, spec, test),
        **{
            f"site_{k}": functools.partial(_central, site, settings, spec, test)
            for k, site in enumerate(sites)
        },
        "fedavg": lambda: _federated(split, settings, args.out / "fedavg", test),
        "fedprox": lambda: _federated(
            split,
            dataclasses.replace(settings, strategy="fedprox", mu=0.01),
            args.out / "fedprox",
            test,
        ),
    }
    results_path = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["machine"] = {"cpu_flags": _cpu_flags(), "python": platform.python_version()}
    results["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results.setdefault("arms", {})
    scores = args.out / "counts"
    scores.mkdir(exist_ok=True)
    for name, run in arms.items():
        if args.arms and name not in args.arms:
            continue
        started = time.perf_counter()
        counts, info = run()
        np.save(scores / f"{name}.npy", counts)
        results["arms"][name] = {**info, "wall_s": round(time.perf_counter() - started)}
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(name, json.dumps(results["arms"][name]), flush=True)
    saved = {path.stem: np.load(path) for path in sorted(scores.glob("*.npy"))}
    results["test_f1"] = _bootstrap(saved)
    local = [results["test_f1"][k]["f1"] for k in saved if k.startswith("site_")]
    if local:
        results["local_only_mean_f1"] = round(float(np.mean(local)), 4)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["test_f1"], indent=2), flush=True)


if __name__ == "__main__":
    main()

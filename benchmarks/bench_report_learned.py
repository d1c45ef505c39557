"""Chest X-ray report labeller: do trained MiniLM classifiers beat or help the rules?

Issue 17 asks, where a trained model helps (a MiniLM classifier per observation, trained on
labels the rules produce and refined on the development reports), to keep both and say which
is better. This benchmark decides it on the **development** part of the Indiana University
reports only (the same hash split as ``bench_report_labeller.py``; the held-out part is not
read), by repeated 5-fold cross-validation: every learned arm is fitted on four folds and
predicts the fifth, so each report gets one out-of-fold prediction per repeat.

Arms (an observation counts as predicted when it is ``positive``, or when a classifier's
probability reaches its threshold: 0.5 for the logistic regressions, tuned per label for the
fine-tuned arms):

* ``rules``: :class:`~insightray.nlp.reports.ReportLabeller` as shipped (nothing fitted).
* ``minilm<-rules``: one logistic regression per observation on the packaged all-MiniLM-L6-v2
  embedding of the report's FINDINGS and IMPRESSION, trained on the rules' own labels (a
  MiniLM student of the rules, the issue's first suggestion), scored against MeSH.
* ``minilm<-mesh``: the same classifiers trained on the indexers' MeSH labels.
* ``rules-stacked<-mesh``: logistic regression on the rules' output alone (each of the 14
  observations' status one-hot, and whether an outside finding was seen), trained on MeSH:
  learns how the indexers map statuses (an uncertain finding, say) to their codes.
* ``rules+minilm<-mesh``: both feature sets together, trained on MeSH.
* With ``--finetune`` (first repeat only; minutes per fold on a CPU): ``minilm-ft<-mesh`` and
  ``minilm-ft<-rules``, MiniLM itself fine-tuned as a multi-label classifier of the 12
  observations by the platform's text-classifier trainer (``train_textcls``: 3 head-only
  epochs, then ``--finetune-epochs`` with every layer; best epoch and per-label thresholds
  on a 10 % validation part of the training folds), on MeSH labels or on the rules' labels.

Each logistic regression picks its inverse regularisation from ``--cs`` by an inner 3-fold
cross-validation on F1 inside the training folds (scikit-learn's ``LogisticRegressionCV``).
An observation with fewer than 3 positive training reports keeps the rules' answer.

Reported: macro-F1 over the 12 observations of the data README, per repeat, with a 95 %
bootstrap interval over reports for the first repeat, and the paired bootstrap difference of
each arm against ``rules`` (same resamples); per-observation F1 for the first repeat.

Usage:
    .venv/bin/python benchmarks/bench_report_learned.py [--repeats 3] [--rounds 1000] \\
        [--finetune WORK_DIR [--finetune-on mesh rules] [--finetune-epochs 2]] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path[:0] = [
    os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
    os.path.dirname(os.path.abspath(__file__)),
]

from bench_cli_startup import cpu_flags  # noqa: E402
from bench_report_labeller import ARCHIVE, held_out  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.nlp.reports import OBSERVATIONS, STATUSES, ReportLabeller  # noqa: E402
from insightray.nlp.reports.evaluation import IU_LABELS, read_iu_reports  # noqa: E402

FOLDS = 5


def rule_features(
    labeller: ReportLabeller, texts: list[str]
) -> tuple[NDArray[Any], list[set[str]]]:
    """One-hot status of each of the 14 observations, plus an outside-finding flag; and the
    rules' positive sets."""
    rows, positives = [], []
    for text in texts:
        labels = labeller.label(text)
        row = [float(labels.status(name) == s) for name in OBSERVATIONS for s in STATUSES]
        row.append(float(bool(labels.other_findings)))
        rows.append(row)
        positives.append(set(labels.positive()))
    return np.asarray(rows, dtype=np.float32), positives


def findings_and_impression(text: str) -> str:
    """The FINDINGS and IMPRESSION lines of a report rebuilt by ``read_iu_reports``."""
    keep = [line for line in text.splitlines() if line.startswith(("FINDINGS:", "IMPRESSION:"))]
    return "\n".join(keep)


def targets(sets: list[set[str]] | list[frozenset[str]], labels: tuple[str, ...]) -> NDArray[Any]:
    """Reports x labels boolean matrix."""
    return np.array([[label in s for label in labels] for s in sets], dtype=bool)


def fit_predict(
    features: NDArray[Any],
    target: NDArray[Any],
    fallback: NDArray[Any],
    folds: NDArray[Any],
    cs: list[float],
    seed: int,
) -> NDArray[Any]:
    """Out-of-fold predictions (reports x labels) of one logistic regression per label."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    predicted = fallback.copy()
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        for j in range(target.shape[1]):
            y = target[train, j]
            if y.sum() < 3 or (~y).sum() < 3:
                continue
            model = LogisticRegressionCV(
                Cs=cs,
                cv=StratifiedKFold(3, shuffle=True, random_state=seed),
                scoring="f1",
                max_iter=2000,
            )
            model.fit(features[train], y)
            predicted[test, j] = model.predict_proba(features[test])[:, 1] >= 0.5
    return predicted


def finetune_predict(
    texts: list[str], target: NDArray[Any], folds: NDArray[Any], work: Path, epochs: int, seed: int
) -> NDArray[Any]:
    """Out-of-fold predictions of MiniLM fine-tuned by ``train_textcls`` on each training part."""
    from insightray.models.text.bert_classifier import load_classifier
    from insightray.training.textcls import Phase, TextClsConfig, train_textcls

    names = [f"y{j}" for j in range(target.shape[1])]
    phases = (
        Phase("head", 3, lr=0.0, head_lr=2e-3, unfreeze=0),
        Phase("all", epochs, lr=8e-5, head_lr=5e-4, unfreeze=None, layer_decay=0.8),
    )
    config = TextClsConfig(
        label_columns=tuple(names),
        fractions=(0.9, 0.1, 0.0),
        seed=seed,
        max_length=128,
        phases=phases,
        num_threads=1,
    )
    predicted = np.zeros_like(target)
    for fold in range(FOLDS):
        train = np.flatnonzero(folds != fold)
        data = work / f"fold{fold}.csv"
        with data.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", *names])
            for i in train:
                writer.writerow([texts[i], *target[i].astype(int)])
        result = train_textcls(data, work / f"fold{fold}", config, log=lambda _line: None)
        loaded = load_classifier(result.folder, verify=False)
        test = np.flatnonzero(folds == fold)
        probs = loaded.predict_proba([texts[i] for i in test])
        cut = np.array([loaded.card.thresholds.extra.get(n, 0.5) for n in names])
        predicted[test] = probs >= cut
    return predicted


def macro_f1(pred: NDArray[Any], true: NDArray[Any]) -> NDArray[Any]:
    """Per-label F1 of boolean matrices (any leading resample axes)."""
    tp = (pred & true).sum(-2)
    fp = (pred & ~true).sum(-2)
    fn = (~pred & true).sum(-2)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def run(
    repeats: int,
    rounds: int,
    cs: list[float],
    work: Path | None,
    finetune_on: tuple[str, ...] = ("mesh", "rules"),
    finetune_epochs: int = 2,
) -> dict[str, Any]:
    """Every arm, out of fold, on the development part."""
    reports = [r for r in read_iu_reports(data_root() / ARCHIVE) if not held_out(r.id)]
    texts = [r.text for r in reports]
    truth = targets([r.reference for r in reports], IU_LABELS)
    started = time.perf_counter()
    rules, rule_sets = rule_features(ReportLabeller(), texts)
    rules_seconds = time.perf_counter() - started
    from insightray.assistant.embeddings import Embedder

    started = time.perf_counter()
    short = [findings_and_impression(t) for t in texts]
    embedding = np.asarray(Embedder().encode(short))
    embed_seconds = time.perf_counter() - started
    by_rules = targets(rule_sets, IU_LABELS)
    arms: dict[str, tuple[NDArray[Any] | None, NDArray[Any]]] = {
        "rules": (None, truth),
        "minilm<-rules": (embedding, by_rules),
        "minilm<-mesh": (embedding, truth),
        "rules-stacked<-mesh": (rules, truth),
        "rules+minilm<-mesh": (np.hstack([rules, embedding]), truth),
    }
    rng = np.random.default_rng(13)
    resample = rng.integers(0, len(reports), size=(rounds, len(reports)))
    result: dict[str, Any] = {
        "machine": cpu_flags(),
        "reports": len(reports),
        "seconds": {"rules": round(rules_seconds, 1), "minilm_embedding": round(embed_seconds, 1)},
        "arms": {},
    }
    for seed in range(repeats):
        folds = np.random.default_rng(seed).permutation(len(reports)) % FOLDS
        predictions = {
            name: by_rules
            if features is None
            else fit_predict(features, target, by_rules, folds, cs, seed)
            for name, (features, target) in arms.items()
        }
        base_boot = macro_f1(predictions["rules"][resample], truth[resample]).mean(-1)
        if seed == 0 and work is not None:
            for source in finetune_on:
                name, target = f"minilm-ft<-{source}", {"mesh": truth, "rules": by_rules}[source]
                started = time.perf_counter()
                folder = work / name.replace("<-", "-")
                folder.mkdir(parents=True, exist_ok=True)
                predictions[name] = finetune_predict(
                    short, target, folds, folder, finetune_epochs, seed
                )
                result["seconds"][name] = round(time.perf_counter() - started, 1)
        for name, pred in predictions.items():
            entry = result["arms"].setdefault(name, {})
            per_label = macro_f1(pred, truth)
            entry.setdefault("macro_f1", []).append(round(float(per_label.mean()), 4))
            if seed:
                continue
            boot = macro_f1(pred[resample], truth[resample]).mean(-1)
            entry["macro_ci"] = [round(float(np.percentile(boot, q)), 4) for q in (2.5, 97.5)]
            diff = boot - base_boot
            entry["vs_rules_ci"] = [round(float(np.percentile(diff, q)), 4) for q in (2.5, 97.5)]
            entry["per_label_f1"] = dict(
                zip(IU_LABELS, np.round(per_label, 3).tolist(), strict=True)
            )
    return result


def _print(result: dict[str, Any]) -> None:
    print(f"development part, {result['reports']} reports, {FOLDS}-fold out-of-fold")
    for name, entry in result["arms"].items():
        runs = entry["macro_f1"]
        print(
            f"{name:22} macro-F1 {' '.join(f'{m:.3f}' for m in runs)} "
            f"(mean {np.mean(runs):.3f}); repeat 1 CI {entry['macro_ci']}, "
            f"vs rules {entry['vs_rules_ci']}"
        )
    print("\nper observation, repeat 1:")
    names = list(result["arms"])
    print(f"{'observation':28}" + "".join(f"{n:>22}" for n in names))
    for label in IU_LABELS:
        print(
            f"{label:28}"
            + "".join(f"{result['arms'][n]['per_label_f1'][label]:>22.3f}" for n in names)
        )
    print(f"\nseconds: {result['seconds']}\nmachine: {result['machine']}")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="5-fold repeats (seeds)")
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--cs", type=float, nargs="+", default=[0.1, 1.0, 10.0, 100.0], help="C grid"
    )
    parser.add_argument(
        "--finetune", type=Path, default=None, help="work folder: add the fine-tuned MiniLM arms"
    )
    parser.add_argument(
        "--finetune-on",
        nargs="+",
        choices=("mesh", "rules"),
        default=["mesh", "rules"],
        help="labels the fine-tuned arms learn from",
    )
    parser.add_argument(
        "--finetune-epochs", type=int, default=2, help="epochs with every layer trained"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(
        args.repeats,
        args.rounds,
        args.cs,
        args.finetune,
        tuple(args.finetune_on),
        args.finetune_epochs,
    )
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()

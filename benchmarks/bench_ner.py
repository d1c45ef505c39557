"""NCBI-disease test F1 and CPU throughput: BiLSTM-CRF against the MiniLM token classifier.

Both taggers are scored with exact-span entity precision/recall/F1 on the official NCBI-disease
test split (940 sentences, never used for training or model selection) and timed predicting
all test sentences (already split into words), best of N repetitions, on the CPU with a fixed
number of torch threads. The full :class:`~insightray.nlp.ner.NerTagger` (tokenisation +
BiLSTM-CRF + rule layer on raw text) is timed too.

Usage:
    python benchmarks/bench_ner.py [--bert runs/bert-ner] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from insightray.config import data_root
from insightray.engine.ner import load_ner_model, predict_tags
from insightray.models.catalog import default_model
from insightray.models.text.token_classifier import load_token_classifier, predict_token_classifier
from insightray.nlp.ner import NerTagger, resolve_model
from insightray.training.metrics.entities import entity_scores
from insightray.training.ner.conll import read_conll


def machine() -> str:
    """CPU model, logical cores and torch threads, for the results table."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__}"


def timed(work: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Result of the first run and the best wall time over ``repeats`` runs."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        output = work()
        best = min(best, time.perf_counter() - started)
        result = output if result is None else result
    return result, best


def row(name: str, gold: Sequence[Sequence[str]], predicted: Any, seconds: float) -> dict[str, Any]:
    scores = entity_scores(gold, predicted)
    return {
        "model": name,
        "precision": round(scores.precision, 4),
        "recall": round(scores.recall, 4),
        "f1": round(scores.f1, 4),
        "sentences_per_s": round(len(gold) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bilstm", default=default_model("ner"), help="BiLSTM-CRF name or card")
    parser.add_argument("--bert", type=Path, help="folder of a trained token classifier")
    parser.add_argument("--split", default="test", choices=["devel", "test"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sentences = read_conll(data_root() / "text" / "ner" / "ncbi_disease" / f"{args.split}.tsv")
    words = [list(s.words) for s in sentences]
    gold = [list(s.tags) for s in sentences]
    results = []

    bilstm = load_ner_model(resolve_model(args.bilstm))
    predicted, seconds = timed(lambda: predict_tags(bilstm, words), args.repeats)
    results.append(row(f"BiLSTM-CRF ({args.bilstm})", gold, predicted, seconds))

    if args.bert is not None:
        bert = load_token_classifier(args.bert)
        predicted, seconds = timed(lambda: predict_token_classifier(bert, words), args.repeats)
        epochs = bert.card.metrics.get("epochs", "?")
        results.append(
            row(f"MiniLM-L6 token classifier ({epochs} epochs)", gold, predicted, seconds)
        )

    tagger = NerTagger(bilstm)
    texts = [" ".join(s) for s in words]
    _, seconds = timed(lambda: tagger.tag_many(texts), args.repeats)
    results.append(
        {
            "model": "NerTagger on raw text (model + rules)",
            "sentences_per_s": round(len(texts) / seconds, 1),
        }
    )

    print(json.dumps({"split": args.split, "sentences": len(words), "threads": args.threads,
                      "machine": machine(), "results": results}, indent=2))  # fmt: skip
    header = f"NCBI-disease {args.split} ({len(words)} sentences), {args.threads} thread(s)"
    print(f"\n{header}, {machine()}")
    print("| model | precision | recall | F1 | sentences/s |")
    print("|---|---|---|---|---|")
    for result in results:
        cells = [result.get(k, "-") for k in ("precision", "recall", "f1", "sentences_per_s")]
        print(f"| {result['model']} | " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()

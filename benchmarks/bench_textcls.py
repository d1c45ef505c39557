"""Disease classifier benchmark: Symptom2Disease held-out accuracy, macro-F1 and CPU throughput.

Scores the bundled ``textcls-symptom2disease-minilm`` on the test part of the split recorded in
its card (the model never saw it), next to a reference measured in the same run: the frozen,
un-tuned all-MiniLM-L6-v2 (mean pooling) with a nearest-centroid classifier fitted on the same
training part. Throughput is sentences per second through ``DiseaseClassifier.rank_many``
(tokenisation included) at batch 32 and batch 1, with 1 and 2 torch threads, best of
``--repeats`` runs over the test texts.

Usage:
    .venv/bin/python benchmarks/bench_textcls.py [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.config import data_root
from insightray.models.catalog import default_model
from insightray.models.text.bert_classifier import (
    BertClassifier,
    load_encoder,
    load_tokenizer,
    resolve_encoder,
)
from insightray.nlp.classifier import DiseaseClassifier
from insightray.training.metrics.classification import classification_report
from insightray.training.textcls.data import TextDataset, load_text_csv
from insightray.training.textcls.evaluate import evaluate_textcls, split_for_card

CSV = "text/classification/symptom2disease/Symptom2Disease.csv"


def centroid_baseline(train: TextDataset, test: TextDataset) -> dict[str, float]:
    """Frozen MiniLM mean-pooled embeddings, cosine nearest class centroid."""
    folder = resolve_encoder("all-minilm-l6-v2")
    tokenizer = load_tokenizer(folder)
    model = BertClassifier(load_encoder(folder), len(train.labels), pooling="mean").eval()

    def embed(texts: tuple[str, ...]) -> NDArray[np.float32]:
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                batch = tokenizer(
                    list(texts[start : start + 32]), padding=True, truncation=True,
                    max_length=128, return_tensors="pt",
                )  # fmt: skip
                rows.append(torch.nn.functional.normalize(model.features(**batch), dim=-1))
        return torch.cat(rows).numpy()

    train_x, test_x = embed(train.texts), embed(test.texts)
    centroids = np.stack(
        [train_x[train.targets == c].mean(axis=0) for c in range(len(train.labels))]
    )
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    report = classification_report(test.targets, (test_x @ centroids.T).argmax(axis=1), test.labels)
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}


def throughput(run: Callable[[], object], count: int, repeats: int) -> float:
    """Best sentences per second over ``repeats`` runs (after one warm-up)."""
    run()
    best = min(_timed(run) for _ in range(repeats))
    return count / best


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    classifier = DiseaseClassifier.load()
    card = classifier.card
    data = load_text_csv(data_root() / CSV)
    train, test = (split_for_card(data, card, part) for part in ("train", "test"))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    ours = evaluate_textcls(classifier.loaded, test)
    reference = centroid_baseline(train, test)
    texts = list(test.texts)
    speeds: dict[str, float] = {}
    for count in (1, 2):
        torch.set_num_threads(count)
        speeds[f"batch32_threads{count}"] = throughput(
            lambda: classifier.rank_many(texts), len(texts), args.repeats
        )
        speeds[f"batch1_threads{count}"] = throughput(
            lambda: [classifier.rank(text) for text in texts[:40]], 40, args.repeats
        )
    torch.set_num_threads(threads)
    record: dict[str, Any] = {
        "model": default_model("text-classification"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads available",
        "test_examples": ours.examples,
        "accuracy": round(ours.accuracy, 4),
        "macro_f1": round(ours.macro_f1, 4),
        "reference_frozen_minilm_centroid": {k: round(v, 4) for k, v in reference.items()},
        "sentences_per_second": {k: round(v, 1) for k, v in speeds.items()},
    }
    if args.json:
        print(json.dumps(record))
        return
    print(json.dumps(record, indent=2))
    print(
        f"| Symptom2Disease test ({ours.examples}) | {record['accuracy']:.4f} | "
        f"{record['macro_f1']:.4f} | frozen MiniLM + centroid: {reference['accuracy']:.4f} / "
        f"{reference['macro_f1']:.4f} | {speeds['batch32_threads1']:.0f} / "
        f"{speeds['batch32_threads2']:.0f} sentences/s (batch 32, 1 / 2 threads) |"
    )


if __name__ == "__main__":
    main()

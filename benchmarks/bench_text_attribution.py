"""Are the disease classifier's word attributions faithful? Deletion and insertion against random.

For each held-out Symptom2Disease text of the bundled ``textcls-symptom2disease-minilm`` (the
test part of the split in its card, never trained on) the best label is explained with
integrated gradients (:func:`insightray.nlp.attribution.explain_text`). Then the words are
deleted (or inserted into an empty text) in the attribution's order and, as the reference in
the same run, in random orders; the area under the label's probability curve is compared:
a faithful attribution gives a smaller deletion area (the probability falls fast) and a larger
insertion area. The difference to random is averaged over texts with a bootstrap 95 % interval.

Usage:
    .venv/bin/python benchmarks/bench_text_attribution.py [--texts 40] [--random 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.nlp.attribution import deletion_curve, explain_text, insertion_curve  # noqa: E402
from insightray.nlp.classifier import DiseaseClassifier  # noqa: E402
from insightray.training.textcls.data import load_text_csv  # noqa: E402
from insightray.training.textcls.evaluate import split_for_card  # noqa: E402

CSV = "text/classification/symptom2disease/Symptom2Disease.csv"
POINTS = 11


def area(curve: NDArray[np.float64]) -> float:
    """Mean probability over the curve's evenly spaced fractions (trapezoid rule on [0, 1])."""
    return float(np.trapz(curve, dx=1.0 / (len(curve) - 1)))


def bootstrap(
    values: NDArray[np.float64], rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(rounds)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=40, help="Held-out texts (first N).")
    parser.add_argument("--random", type=int, default=5, help="Random orders per text.")
    parser.add_argument("--steps", type=int, default=32, help="Integrated-gradient steps.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classifier = DiseaseClassifier.load()
    test = split_for_card(load_text_csv(data_root() / CSV), classifier.card, "test")
    rng = np.random.default_rng(0)
    rows: dict[str, list[float]] = {key: [] for key in ("del_ig", "del_rand", "ins_ig", "ins_rand")}
    deltas, started = [], time.perf_counter()
    for text in test.texts[: args.texts]:
        explanation = explain_text(classifier.loaded, text, steps=args.steps)
        words = [word.text for word in explanation.words]
        ranked = sorted(range(len(words)), key=lambda i: -explanation.words[i].weight)
        shuffles = [list(rng.permutation(len(words))) for _ in range(args.random)]
        label = explanation.label
        rows["del_ig"].append(area(deletion_curve(classifier.loaded, words, ranked, label)))
        rows["ins_ig"].append(area(insertion_curve(classifier.loaded, words, ranked, label)))
        rows["del_rand"].append(
            float(
                np.mean(
                    [area(deletion_curve(classifier.loaded, words, o, label)) for o in shuffles]
                )
            )
        )
        rows["ins_rand"].append(
            float(
                np.mean(
                    [area(insertion_curve(classifier.loaded, words, o, label)) for o in shuffles]
                )
            )
        )
        deltas.append(explanation.convergence_delta)
    seconds = (time.perf_counter() - started) / max(len(deltas), 1)
    result: dict[str, Any] = {"texts": len(deltas), "seconds_per_text": round(seconds, 2)}
    for curve in ("del", "ins"):
        ours, reference = np.array(rows[f"{curve}_ig"]), np.array(rows[f"{curve}_rand"])
        low, high = bootstrap(ours - reference)
        result[curve] = {
            "integrated_gradients": round(float(ours.mean()), 4),
            "random_reference": round(float(reference.mean()), 4),
            "difference": round(float((ours - reference).mean()), 4),
            "ci95": [round(low, 4), round(high, 4)],
        }
    result["median_convergence_delta"] = round(float(np.median(deltas)), 5)
    result["machine"] = cpu_flags()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for curve, name in (("del", "deletion (lower is better)"), ("ins", "insertion (higher)")):
        row = result[curve]
        print(
            f"{name}: IG {row['integrated_gradients']:.3f} vs random {row['random_reference']:.3f}"
            f", difference {row['difference']:+.3f} [{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"
        )
    print(f"{result['texts']} texts, {seconds:.1f} s per text; {result['machine']}")


if __name__ == "__main__":
    main()

"""Are the disease classifier's word explanations faithful? Deletion and insertion against random.

For each held-out Symptom2Disease text of the bundled ``textcls-symptom2disease-minilm`` (the
test part of the split in its card, never trained on) the best label is explained with
integrated gradients and with attention rollout
(:func:`insightray.nlp.attribution.explain_text`). Then the words are deleted (or inserted
into an empty text) in each method's order and, as the reference in the same run, in random
orders; the area under the label's probability curve is compared: a faithful explanation gives
a smaller deletion area (the probability falls fast) and a larger insertion area. Each
method's difference to random, and attention's difference to integrated gradients, is averaged
over texts with a bootstrap 95 % interval.

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


#: The methods compared, as :func:`explain_text` names them, and their short keys.
METHODS = {"ig": "integrated-gradients", "attention": "attention-rollout"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=40, help="Held-out texts (first N).")
    parser.add_argument("--random", type=int, default=5, help="Random orders per text.")
    parser.add_argument("--steps", type=int, default=32, help="Integrated-gradient steps.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classifier = DiseaseClassifier.load()
    loaded = classifier.loaded
    test = split_for_card(load_text_csv(data_root() / CSV), classifier.card, "test")
    rng = np.random.default_rng(0)
    rows: dict[str, list[float]] = {
        f"{curve}_{key}": [] for curve in ("del", "ins") for key in (*METHODS, "rand")
    }
    seconds: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    deltas, started = [], time.perf_counter()
    for number, text in enumerate(test.texts[: args.texts], 1):
        print(f"text {number}/{args.texts}", file=sys.stderr, flush=True)
        explained = {}
        for key, method in METHODS.items():
            tick = time.perf_counter()
            explained[key] = explain_text(loaded, text, steps=args.steps, method=method)
            seconds[key] += time.perf_counter() - tick
        label = explained["ig"].label  # both explain the best label
        words = [word.text for word in explained["ig"].words]
        for key, explanation in explained.items():
            ranked = sorted(range(len(words)), key=lambda i: -explanation.words[i].weight)
            rows[f"del_{key}"].append(area(deletion_curve(loaded, words, ranked, label)))
            rows[f"ins_{key}"].append(area(insertion_curve(loaded, words, ranked, label)))
        shuffles = [list(rng.permutation(len(words))) for _ in range(args.random)]
        for curve, measure in (("del", deletion_curve), ("ins", insertion_curve)):
            areas = [area(measure(loaded, words, order, label)) for order in shuffles]
            rows[f"{curve}_rand"].append(float(np.mean(areas)))
        deltas.append(explained["ig"].convergence_delta or 0.0)
    count = max(len(deltas), 1)
    result: dict[str, Any] = {
        "texts": len(deltas),
        "seconds_per_text": round((time.perf_counter() - started) / count, 2),
        "explain_seconds_per_text": {k: round(v / count, 3) for k, v in seconds.items()},
    }
    for curve in ("del", "ins"):
        reference = np.array(rows[f"{curve}_rand"])
        row: dict[str, Any] = {"random_reference": round(float(reference.mean()), 4)}
        for key, method in METHODS.items():
            ours = np.array(rows[f"{curve}_{key}"])
            row[method] = {"area": round(float(ours.mean()), 4), **_difference(ours, reference)}
        attention, ig = np.array(rows[f"{curve}_attention"]), np.array(rows[f"{curve}_ig"])
        row["attention_minus_ig"] = _difference(attention, ig)
        result[curve] = row
    result["median_convergence_delta"] = round(float(np.median(deltas)), 5)
    result["machine"] = cpu_flags()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for curve, name in (("del", "deletion (lower is better)"), ("ins", "insertion (higher)")):
        row = result[curve]
        print(f"{name}: random {row['random_reference']:.3f}")
        for method in METHODS.values():
            print(f"  {method}: {row[method]['area']:.3f}, vs random {_text(row[method])}")
        print(f"  attention minus IG: {_text(row['attention_minus_ig'])}")
    print(
        f"{result['texts']} texts, {result['seconds_per_text']:.1f} s per text; {result['machine']}"
    )


def _difference(ours: NDArray[np.float64], reference: NDArray[np.float64]) -> dict[str, Any]:
    """Mean paired difference and its bootstrap 95 % interval over texts."""
    low, high = bootstrap(ours - reference)
    return {
        "difference": round(float((ours - reference).mean()), 4),
        "ci95": [round(low, 4), round(high, 4)],
    }


def _text(row: dict[str, Any]) -> str:
    return f"{row['difference']:+.3f} [{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"


if __name__ == "__main__":
    main()

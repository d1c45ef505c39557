"""Triage accuracy per level, with Wilson 95 % intervals, on the hand-written case sets.

Two sets, both written for Insight Ray in our own words (tests/assistant/data/):
``triage_cases.jsonl`` (76 cases, the development set the rules were written against) and
``triage_cases_heldout.jsonl`` (38 cases written before the rules were run on them, never
tuned on). Slots (durations) come from the assistant's slot filler, as in a chat turn.

Usage:
    PYTHONPATH=. python benchmarks/bench_triage.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402

from insightray.assistant.slots import SlotFiller  # noqa: E402
from insightray.assistant.triage import Triage  # noqa: E402
from insightray.assistant.triage_rules import LEVELS  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "assistant" / "data"
SETS = {"development": "triage_cases.jsonl", "held-out": "triage_cases_heldout.jsonl"}


def wilson(correct: int, total: int) -> tuple[float, float]:
    """Wilson 95 % interval of ``correct / total`` (scipy)."""
    if total == 0:
        return (0.0, 0.0)
    interval = binomtest(correct, total).proportion_ci(0.95, method="wilson")
    return (round(float(interval.low), 3), round(float(interval.high), 3))


def evaluate(path: Path, triage: Triage, slots: SlotFiller) -> dict[str, object]:
    """Accuracy overall and per level, the confusion counts and the misses."""
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    confusion: Counter[tuple[str, str]] = Counter()
    misses = []
    started = time.perf_counter()
    for case in cases:
        found = triage.assess(case["text"], slots.extract(case["text"])).level
        confusion[(case["level"], found)] += 1
        if found != case["level"]:
            misses.append({"text": case["text"], "expected": case["level"], "found": found})
    per_level = {}
    for level in LEVELS:
        total = sum(n for (want, _), n in confusion.items() if want == level)
        right = confusion[(level, level)]
        per_level[level] = {
            "n": total,
            "accuracy": round(right / total, 3) if total else None,
            "ci95": wilson(right, total),
        }
    right = sum(confusion[(level, level)] for level in LEVELS)
    under = sum(n for (want, got), n in confusion.items() if LEVELS.index(got) > LEVELS.index(want))
    return {
        "cases": len(cases),
        "accuracy": round(right / len(cases), 3),
        "ci95": wilson(right, len(cases)),
        "under_triaged": under,
        "per_level": per_level,
        "confusion": {f"{a}->{b}": n for (a, b), n in sorted(confusion.items())},
        "misses": misses,
        "ms_per_case": round((time.perf_counter() - started) * 1000 / len(cases), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    triage, slots = Triage(), SlotFiller()
    slots.extract("warm up")
    results = {
        "machine": cpu_flags(),
        **{name: evaluate(DATA / file, triage, slots) for name, file in SETS.items()},
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

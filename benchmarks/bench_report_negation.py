"""Report labeller: negation and uncertainty per sentence against hand labels (issue 17).

Reads the 100 hand-labelled sentences of ``benchmarks/data/iu_negation_labels.jsonl`` (see
``iu_negation_labels.md`` there for the conventions), re-reading each sentence's text from the
Indiana reports in place and checking its hash. Each report is labelled whole (rebuilt as
``FINDINGS: ...`` / ``IMPRESSION: ...`` lines); a system's status of an observation in a
sentence aggregates its mentions inside that sentence as the labeller does (positive over
uncertain over negative).

Systems, in the same run:

* ``labeller``: :class:`~insightray.nlp.reports.ReportLabeller` as shipped (rules, default).
* ``keywords+context``: the same mention phrases with medspaCy's default ConText plus the
  platform's general rules (``bench_report_labeller.reference_labeller``, the reference of
  BENCHMARKS.md's report section).

Scores over (sentence, observation) pairs, 13 observations (CheXpert's 14 less No Finding):
per status (positive / negative / uncertain) precision, recall, F1; and the accuracy of the
status on the pairs both the hand labels and the system mention. 95 % intervals: percentile
bootstrap over sentences. ``--disagreements`` prints each disagreement for reading by hand
(the licensed text goes to the terminal only, never to a file of the repository).

Usage:
    .venv/bin/python benchmarks/bench_report_negation.py [--rounds 1000] [--json]
        [--disagreements]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402
from bench_report_labeller import reference_labeller  # noqa: E402
from iu_negation_sample import (  # noqa: E402
    ARCHIVE,
    OBSERVATIONS,
    STATUSES,
    LabelledSentence,
    labelled_sentences,
    section_texts,
)

from insightray.config import data_root  # noqa: E402
from insightray.nlp.reports import ReportLabeller  # noqa: E402

_ORDER = ("FINDINGS", "IMPRESSION")
_RANK = {"positive": 0, "uncertain": 1, "negative": 2}


def sentence_statuses(
    labeller: ReportLabeller, sentences: list[LabelledSentence], archive: Path
) -> list[dict[str, str]]:
    """Per sentence, the system's status of each observation it mentions there."""
    wanted = {s.report for s in sentences}
    parts: dict[str, dict[str, str]] = {}
    for name, section, text in section_texts(archive):
        if name in wanted:
            parts.setdefault(name, {})[section] = text
    predicted = []
    for report, sections in parts.items():
        offsets, lines, at = {}, [], 0
        for name in _ORDER:
            if name in sections:
                offsets[name] = at + len(name) + 2
                lines.append(f"{name}: {sections[name]}")
                at += len(lines[-1]) + 1
        labels = labeller.label("\n".join(lines), report)
        for sentence in (s for s in sentences if s.report == report):
            start = offsets[sentence.section] + sentence.start
            end = offsets[sentence.section] + sentence.end
            found: dict[str, str] = {}
            for observation in labels.observations:
                inside = [e.status for e in observation.evidence if start <= e.start < end]
                if inside and observation.label in OBSERVATIONS:
                    found[observation.label] = min(inside, key=_RANK.__getitem__)
            predicted.append((sentence, found))
    order = {id(s): i for i, s in enumerate(sentences)}
    return [found for _, found in sorted(predicted, key=lambda p: order[id(p[0])])]


def _counts(truth: dict[str, str], found: dict[str, str]) -> list[int]:
    """Per sentence: tp, fp, fn for each status, then mentions both found and agreed."""
    row = []
    for status in STATUSES:
        t = {o for o, s in truth.items() if s == status}
        p = {o for o, s in found.items() if s == status}
        row += [len(t & p), len(p - t), len(t - p)]
    both = set(truth) & set(found)
    row += [len(both), sum(truth[o] == found[o] for o in both)]
    return row


def _metrics(total: np.ndarray) -> dict[str, float]:
    out = {}
    for i, status in enumerate(STATUSES):
        tp, fp, fn = total[..., 3 * i], total[..., 3 * i + 1], total[..., 3 * i + 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{status}_precision"] = tp / (tp + fp)
            out[f"{status}_recall"] = tp / (tp + fn)
            out[f"{status}_f1"] = 2 * tp / (2 * tp + fp + fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["status_accuracy"] = total[..., -1] / total[..., -2]
    return out


def score(
    truth: list[dict[str, str]], found: list[dict[str, str]], rounds: int, seed: int = 0
) -> dict[str, Any]:
    """Per-status precision / recall / F1 and status accuracy, each with a 95 % interval."""
    rows = np.array([_counts(t, f) for t, f in zip(truth, found, strict=True)], dtype=float)
    point = _metrics(rows.sum(axis=0))
    rng = np.random.default_rng(seed)
    draws = rows[rng.integers(0, len(rows), (rounds, len(rows)))].sum(axis=1)
    spread = _metrics(draws)
    result: dict[str, Any] = {
        "mentions_both": int(rows[:, -2].sum()),
        "support": {
            s: int(rows[:, 3 * i].sum() + rows[:, 3 * i + 2].sum()) for i, s in enumerate(STATUSES)
        },
    }
    for key, value in point.items():
        low, high = np.nanpercentile(spread[key], [2.5, 97.5]) if rounds else (value, value)
        result[key] = [round(float(value), 3), round(float(low), 3), round(float(high), 3)]
    return result


def run(rounds: int, disagreements: bool) -> dict[str, Any]:
    """Score both systems on the hand-labelled sentences."""
    archive = data_root() / ARCHIVE
    sentences = labelled_sentences(archive)
    truth = [s.labels for s in sentences]
    systems = {"labeller": ReportLabeller(), "keywords+context": reference_labeller()}
    result: dict[str, Any] = {"machine": cpu_flags(), "sentences": len(sentences)}
    for name, labeller in systems.items():
        found = sentence_statuses(labeller, sentences, archive)
        result[name] = score(truth, found, rounds)
        if disagreements:
            for sentence, t, f in zip(sentences, truth, found, strict=True):
                if t != f:
                    flag = " (unsure)" if sentence.unsure else ""
                    print(f"[{name}] {sentence.text!r}{flag}\n   hand {t}\n   got  {f}")
    return result


def _print(result: dict[str, Any]) -> None:
    systems = [k for k in result if isinstance(result[k], dict)]
    print(f"{result['sentences']} sentences; machine: {result['machine']}")
    keys = [k for k in result[systems[0]] if isinstance(result[systems[0]][k], list)]
    print(f"{'metric':22}" + "".join(f"{n:>26}" for n in systems))
    for key in keys:
        cells = ["{:.3f} [{:.3f}, {:.3f}]".format(*result[n][key]) for n in systems]
        print(f"{key:22}" + "".join(f"{c:>26}" for c in cells))
    for n in systems:
        print(f"{n}: support {result[n]['support']}, both mention {result[n]['mentions_both']}")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--disagreements", action="store_true", help="print each disagreement (terminal only)"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run(args.rounds, args.disagreements)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()

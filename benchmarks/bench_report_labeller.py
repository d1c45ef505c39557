"""Chest X-ray report labeller: per-observation precision / recall / F1 against MeSH, and speed.

Reads the Indiana University reports in place (``$INSIGHTRAY_DATA/text/reports/iu_xray_dev/
NLMCXR_reports_odd.tgz``), derives each report's reference from its indexers' MeSH ``<major>``
terms with the data README's mapping (see :mod:`insightray.nlp.reports.evaluation`), and splits
the scorable reports by a hash of their id into a development part (80 %, the only part the
rules were tuned on) and a held-out part (20 %, scored, never read report by report).

Systems, all measured in this run on the same reports (an observation counts as predicted when
its status is ``positive``):

* ``labeller``: :class:`~insightray.nlp.reports.ReportLabeller` (sections, mention rules,
  platform + report ConText rules).
* ``keywords``: the same mention phrases anywhere in the report, no sections, no negation or
  uncertainty; ``No Finding`` when nothing matched (the simple reference).
* ``keywords+context``: the same mention phrases with the platform's general ConText rules
  (medspaCy's + ``context_rules.json``), no sections, no report rules, no ``other_findings``
  (close to the README's reference: keyword lists + medspaCy's default ConText).

Speed: reports per second through ``ReportLabeller.label`` on one thread, best of ``--repeats``.

Usage:
    .venv/bin/python benchmarks/bench_report_labeller.py [--rounds 1000] [--repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.nlp.context import ContextAnalyzer, ContextConfig  # noqa: E402
from insightray.nlp.reports import NO_FINDING, ReportLabeller  # noqa: E402
from insightray.nlp.reports.evaluation import (  # noqa: E402
    IU_LABELS,
    IuReport,
    read_iu_reports,
    score,
)

ARCHIVE = "text/reports/iu_xray_dev/NLMCXR_reports_odd.tgz"


EVERY_SECTION = frozenset(
    ("FINDINGS", "IMPRESSION", "BODY", "INDICATION", "HISTORY", "COMPARISON", "TECHNIQUE")
)


def reference_labeller() -> ReportLabeller:
    """The reference: the same mention phrases with the platform's general ConText rules
    (medspaCy's + ``context_rules.json``), every section, no report rules, no other findings."""
    return ReportLabeller(
        context=ContextAnalyzer(ContextConfig(historical_after_days=None)),
        scored=EVERY_SECTION,
        other_findings=False,
    )


def held_out(report_id: str) -> bool:
    """One report in five, by a hash of its id, is held out from tuning."""
    return int(hashlib.sha256(report_id.encode()).hexdigest(), 16) % 5 == 0


def keyword_labels(labeller: ReportLabeller, text: str) -> set[str]:
    """Observations with any mention phrase anywhere in ``text``; ``No Finding`` if none."""
    found = {m.label for m in labeller.mentions(text, labeller.sections(text)) if not m.absent}
    others = found - {"Support Devices"}
    return found | ({NO_FINDING} if not others else set())


def run(rounds: int, repeats: int) -> dict[str, Any]:
    """Score every system on both parts and time the labeller."""
    reports = list(read_iu_reports(data_root() / ARCHIVE))
    ours = ReportLabeller()
    plain_context = reference_labeller()
    keywords_only = ReportLabeller(
        context=plain_context.context, scored=EVERY_SECTION, other_findings=False
    )
    systems: dict[str, Callable[[IuReport], set[str]]] = {
        "labeller": lambda r: set(ours.label(r.text).positive()),
        "keywords": lambda r: keyword_labels(keywords_only, r.text),
        "keywords+context": lambda r: set(plain_context.label(r.text).positive()),
    }
    result: dict[str, Any] = {"machine": cpu_flags(), "rules": ours.rules_name}
    for part, members in (
        ("development", [r for r in reports if not held_out(r.id)]),
        ("held_out", [r for r in reports if held_out(r.id)]),
    ):
        truth = [r.reference for r in members]
        result[part] = {
            name: score([predict(r) for r in members], truth, IU_LABELS, rounds).to_dict()
            for name, predict in systems.items()
        }
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for report in reports:
            ours.label(report.text)
        best = max(best, len(reports) / (time.perf_counter() - started))
    result["reports_per_second_1_thread"] = round(best, 1)
    result["reports"] = len(reports)
    return result


def _print(result: dict[str, Any]) -> None:
    for part in ("development", "held_out"):
        systems = result[part]
        first = next(iter(systems.values()))
        print(f"\n{part}: {first['reports']} reports")
        print(f"{'observation':28}" + "".join(f"{name:>24}" for name in systems))
        for label in IU_LABELS:
            cells = []
            for scores in systems.values():
                s = scores["per_label"][label]
                cells.append(
                    f"{s['precision']:.2f}/{s['recall']:.2f}/{s['f1']:.2f} n={s['support']:<4}"
                )
            print(f"{label:28}" + "".join(f"{c:>24}" for c in cells))
        cells = [
            f"{s['macro_f1']:.3f} [{s['macro_low']:.3f}, {s['macro_high']:.3f}]"
            for s in systems.values()
        ]
        print(f"{'macro-F1 [95% CI]':28}" + "".join(f"{c:>24}" for c in cells))
    print(
        f"\nlabeller ({result['rules']}): {result['reports_per_second_1_thread']} reports/s on "
        f"one thread\nmachine: {result['machine']}"
    )


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--repeats", type=int, default=1, help="timing runs (best kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run(args.rounds, args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()

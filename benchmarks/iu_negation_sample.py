"""Draw the hand-labelling sample for the negation / uncertainty benchmark (issue 17).

Writes the sentences to label as references only (report file, section, character offsets
in the section's text, SHA-256 of the sentence): the Indiana reports are CC BY-NC-ND and are
never committed. The labeller is NOT run here: the sample must not depend on it.

Sampling (seed 17): every FINDINGS / IMPRESSION section of the development reports
(``iu_xray_dev/NLMCXR_reports_odd.tgz``) is split into sentences with the labeller's own
splitter (:meth:`ContextAnalyzer.sentences`, PyRuSH). Sentences are deduplicated on their
lower-cased text (the first occurrence, in archive order, is kept) so that stock phrases such
as "No pneumothorax." count once. The pool is split by a generic cue list (``CUES`` below, not
the labeller's rules): half of the sample is drawn from sentences containing a cue, half from
all the rest, both uniformly at random.

Usage:
    .venv/bin/python benchmarks/iu_negation_sample.py [--size 100] > sample.jsonl

Also the reader of the labels (:func:`labelled_sentences`), which re-reads each sentence from
the shared data and checks its hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from insightray.config import data_root  # noqa: E402
from insightray.nlp.reports.evaluation import iu_report_roots  # noqa: E402
from insightray.nlp.reports.rules import OBSERVATIONS as CHEXPERT  # noqa: E402

LABELS = ROOT / "benchmarks" / "data" / "iu_negation_labels.jsonl"
#: Observations a sentence can be labelled with (CheXpert's 14 less No Finding).
OBSERVATIONS = CHEXPERT[1:]
STATUSES = ("positive", "negative", "uncertain")
ARCHIVE = "text/reports/iu_xray_dev/NLMCXR_reports_odd.tgz"
SECTIONS = ("FINDINGS", "IMPRESSION")
#: Generic negation and hedge cue words (a stratification aid, not the labeller's rules).
CUES = re.compile(
    r"\b(?:no|not|without|negative for|free of|clear|resolved|may|might|possible|possibly|"
    r"probable|probably|cannot be excluded|cannot exclude|not excluded|likely|suggest\w*|"
    r"question|questionable|versus|vs|or|concern|consider\w*|could)\b",
    re.I,
)


def sha256(text: str) -> str:
    """The hex SHA-256 of ``text`` in UTF-8."""
    return hashlib.sha256(text.encode()).hexdigest()


def section_texts(archive: Path) -> Iterator[tuple[str, str, str]]:
    """``(file name, section, text)`` of each FINDINGS / IMPRESSION section, archive order."""
    for name, root in iu_report_roots(archive):
        for node in root.iter("AbstractText"):
            if node.get("Label") in SECTIONS and (node.text or "").strip():
                yield Path(name).name, str(node.get("Label")), node.text or ""


@dataclass(frozen=True)
class LabelledSentence:
    """One hand-labelled sentence, its text re-read from the shared data."""

    report: str
    section: str
    start: int
    end: int
    text: str
    labels: dict[str, str]
    unsure: bool


def load_labels(path: Path = LABELS) -> list[dict[str, object]]:
    """The label records (references and labels, no text)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def labelled_sentences(archive: Path, path: Path = LABELS) -> list[LabelledSentence]:
    """The labelled sentences with their text, each checked against its SHA-256.

    Raises:
        ValueError: A sentence's text does not match its recorded hash.
    """
    records = load_labels(path)
    wanted = {str(r["report"]) for r in records}
    sections = {(n, s): t for n, s, t in section_texts(archive) if n in wanted}
    sentences = []
    for r in records:
        start, end = int(str(r["start"])), int(str(r["end"]))
        text = sections[(str(r["report"]), str(r["section"]))][start:end]
        if sha256(text) != r["sha256"]:
            raise ValueError(f"{r['report']} {r['section']} {start}:{end}: hash differs")
        labels = r["labels"]
        assert isinstance(labels, dict)
        sentences.append(
            LabelledSentence(
                str(r["report"]), str(r["section"]), start, end, text, labels, bool(r["unsure"])
            )
        )
    return sentences


def sample(size: int, seed: int = 17) -> list[dict[str, object]]:
    """The stratified sample, as reference records without the sentence text."""
    from insightray.nlp.context import ContextAnalyzer  # spaCy: only the sampler needs it

    splitter = ContextAnalyzer()
    seen: set[str] = set()
    cued: list[dict[str, object]] = []
    plain: list[dict[str, object]] = []
    for name, section, text in section_texts(data_root() / ARCHIVE):
        for sentence in splitter.sentences(text):
            key = " ".join(sentence.text.lower().split())
            if not key or key in seen:
                continue
            seen.add(key)
            record = {
                "report": name,
                "section": section,
                "start": sentence.start,
                "end": sentence.end,
                "sha256": sha256(text[sentence.start : sentence.end]),
            }
            (cued if CUES.search(sentence.text) else plain).append(record)
    rng = random.Random(seed)
    chosen = [dict(r, stratum="cue") for r in rng.sample(cued, size // 2)]
    chosen += [dict(r, stratum="random") for r in rng.sample(plain, size - size // 2)]
    rng.shuffle(chosen)
    return chosen


def main() -> None:
    """Command-line entry point: one JSON record per line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="sentences to draw")
    args = parser.parse_args()
    for record in sample(args.size):
        print(json.dumps(record))


if __name__ == "__main__":
    main()

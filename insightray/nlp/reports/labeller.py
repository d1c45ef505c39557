"""Chest X-ray report labeller: the 14 CheXpert observations, each positive, negative,
uncertain or absent, with the evidence for it.

The method is the CheXpert labeler's (Irvin et al. 2019), itself built on NegBio:

1. **Sections** (:mod:`insightray.nlp.reports.sections`): only FINDINGS, IMPRESSION and text
   without a header count; INDICATION, HISTORY, COMPARISON and TECHNIQUE never make a finding.
2. **Mentions**: regular expressions per observation, kept as data in
   ``resources/chexpert_observations.json`` (mention phrases, phrases that state absence by
   themselves such as "heart size is normal", and exclusions such as "pericardial effusion").
3. **Negation and uncertainty**: the platform's ConText (:mod:`insightray.nlp.context`,
   medspaCy) with its rules plus the report rules in ``resources/report_context_rules.json``;
   sentences come from PyRuSH.
4. **Aggregation**: an observation is positive when any mention is, else uncertain when any
   mention is, else negative when it is mentioned at all, else absent. ``No Finding`` is
   positive exactly when no other observation but Support Devices is positive or uncertain,
   and no finding outside the 14 (``other_findings`` of the rules: granuloma, degenerative
   spine, hyperinflation...) is either: a normal study has none.

Each mention also carries the laterality, severity, size and change words of its clause.

Example:
    >>> labeller = ReportLabeller()  # doctest: +SKIP
    >>> labels = labeller.label("No pneumothorax. Small left pleural effusion.")  # doctest: +SKIP
    >>> labels.status("Pneumothorax"), labels.status("Pleural Effusion")  # doctest: +SKIP
    ('negative', 'positive')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from insightray.errors import InputError
from insightray.nlp.context import ContextAnalyzer, ContextConfig, ContextualEntity, Sentence
from insightray.nlp.reports.rules import (
    NO_FINDING,
    OBSERVATIONS,
    OTHER_FINDING,
    REPORT_CONTEXT_RULES,
    RULES_PATH,
    Mention,
    MentionRules,
    compile_phrases,
)
from insightray.nlp.reports.sections import BODY, Section, SectionRules

__all__ = [
    "NO_FINDING",
    "OBSERVATIONS",
    "REPORT_CONTEXT_RULES",
    "RULES_PATH",
    "STATUSES",
    "Evidence",
    "Observation",
    "ReportLabeller",
    "ReportLabels",
]

STATUSES = ("positive", "uncertain", "negative", "absent")
_BREAK = re.compile(r"[;,]|\b(?:and|but|with|while|which)\b", re.I)


@dataclass(frozen=True)
class Evidence:
    """One mention of an observation and what the report says about it.

    Attributes:
        text / start / end: The mention and its offsets in the report.
        status: ``positive``, ``negative`` or ``uncertain`` for this mention.
        section: The section it is in.
        sentence: The sentence it is in.
        cues: The ConText cues (``NEGATED_EXISTENCE: no``) or the rule that decided it.
        laterality / severity / change: Words of those kinds in the mention's clause.
        size: Measurements in the clause (``5 mm``).
    """

    text: str
    start: int
    end: int
    status: str
    section: str
    sentence: str
    cues: tuple[str, ...] = ()
    laterality: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    size: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """One CheXpert observation: its status and the mentions behind it."""

    label: str
    status: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class ReportLabels:
    """A labelled report.

    Attributes:
        id: The caller's identifier of the report (``None`` when none was given).
        sections: The sections found.
        observations: The 14 observations, in CheXpert's order.
        rules: Name and version of the rules that labelled it.
        other_findings: Mentions of findings outside the 14 (granuloma, degenerative spine,
            hyperinflation...); a positive or uncertain one keeps No Finding from being
            positive.
    """

    id: str | None
    sections: tuple[Section, ...]
    observations: tuple[Observation, ...]
    rules: str
    other_findings: tuple[Evidence, ...] = ()

    def status(self, label: str) -> str:
        """The status of observation ``label``."""
        return next(o.status for o in self.observations if o.label == label)

    def positive(self) -> list[str]:
        """The labels of the positive observations."""
        return [o.label for o in self.observations if o.status == "positive"]

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


class ReportLabeller:
    """Labels chest X-ray reports with CheXpert's 14 observations.

    Building one loads spaCy and medspaCy (about a second); reuse it across reports.

    Args:
        rules_path: Mention, section and modifier rules.
        context: A ConText analyzer that has the report rules; default one is built.
        scored: Sections whose mentions count (default: the rules file's ``sections.scored``).
        other_findings: Look for findings outside the 14 (``other_findings`` of the rules),
            which keep No Finding from being positive; ``False`` gives CheXpert's plain rule.
    """

    def __init__(
        self,
        rules_path: Path = RULES_PATH,
        context: ContextAnalyzer | None = None,
        scored: Iterable[str] | None = None,
        other_findings: bool = True,
    ) -> None:
        self.other_findings = other_findings
        self.rules = MentionRules(rules_path)
        self.rules_name = self.rules.name
        data = self.rules.data
        sections = data.get("sections", {})
        self._sections = SectionRules(sections.get("names", {}))
        self._scored = frozenset(scored or sections.get("scored", ["FINDINGS", "IMPRESSION", BODY]))
        modifiers = data.get("modifiers", {})
        self._modifiers = {
            kind: compile_phrases(modifiers.get(kind, []), kind)
            for kind in ("laterality", "severity", "change")
        }
        self._size = compile_phrases([modifiers.get("size", r"\d+(?:\.\d+)?\s?(?:mm|cm)")], "size")[
            0
        ]
        self.context = context or ContextAnalyzer(
            ContextConfig(extra_rules=(REPORT_CONTEXT_RULES,), historical_after_days=None)
        )

    def sections(self, text: str) -> list[Section]:
        """The sections of ``text``."""
        return self._sections.split(text)

    def mentions(self, text: str, sections: Sequence[Section]) -> list[Mention]:
        """Mentions in the scored sections of ``text``."""
        return self.rules.find(text, [(s.start, s.end) for s in sections if s.name in self._scored])

    def label(self, text: str, report_id: str | None = None) -> ReportLabels:
        """Label one report.

        Args:
            text: The report, with or without section headers.
            report_id: An identifier to carry into the result.

        Raises:
            InputError: The text is empty.
        """
        if not text.strip():
            raise InputError("report", "the report is empty", "give the report's text")
        sections = self.sections(text)
        mentions = self.mentions(text, sections)
        if self.other_findings:
            mentions += self.rules.find_other(
                text, [(s.start, s.end) for s in sections if s.name in self._scored]
            )
        entities = [(m.label, m.start, m.end, m.text) for m in mentions]
        result = self.context.analyze(_without_headers(text, sections), entities)
        evidence: dict[str, list[Evidence]] = {
            label: [] for label in (*OBSERVATIONS, OTHER_FINDING)
        }
        for mention, entity in zip(mentions, result.entities, strict=True):
            evidence[mention.label].append(
                self._evidence(text, entity, mention.absent, sections, result.sentences)
            )
        observations = [_aggregate(label, evidence[label]) for label in OBSERVATIONS[1:]]
        other = tuple(evidence[OTHER_FINDING])
        findings = any(
            o.status in ("positive", "uncertain")
            for o in observations
            if o.label != "Support Devices"
        ) or any(e.status in ("positive", "uncertain") for e in other)
        no_finding = Observation(NO_FINDING, "absent" if findings else "positive")
        return ReportLabels(
            report_id, tuple(sections), (no_finding, *observations), self.rules_name, other
        )

    def label_many(self, reports: Iterable[tuple[str | None, str]]) -> list[ReportLabels]:
        """Label ``(id, text)`` pairs in order."""
        return [self.label(text, report_id) for report_id, text in reports]

    def _evidence(
        self,
        text: str,
        entity: ContextualEntity,
        absent: bool,
        sections: Sequence[Section],
        sentences: Sequence[Sentence],
    ) -> Evidence:
        cues: tuple[str, ...]
        if absent:
            status, cues = "negative", ("rule: states absence",)
        else:
            cues = tuple(f"{c.category}: {c.text}" for c in entity.cues)
            if entity.negated:
                status = "negative"
            elif entity.uncertain or entity.hypothetical:
                status = "uncertain"
            else:
                status = "positive"
        section = next((s.name for s in sections if s.start <= entity.start < s.end), BODY)
        sentence = next(
            (s for s in sentences if s.start <= entity.start < s.end),
            Sentence(entity.start, entity.end, entity.text),
        )
        clause = _clause(text, sentence, entity.start, entity.end)
        words = {
            kind: tuple(
                dict.fromkeys(m.group(0).lower() for p in patterns for m in p.finditer(clause))
            )
            for kind, patterns in self._modifiers.items()
        }
        return Evidence(
            text=entity.text,
            start=entity.start,
            end=entity.end,
            status=status,
            section=section,
            sentence=sentence.text,
            cues=cues,
            laterality=words["laterality"],
            severity=words["severity"],
            change=words["change"],
            size=tuple(m.group(0) for m in self._size.finditer(clause)),
        )


def _without_headers(text: str, sections: Sequence[Section]) -> str:
    """``text`` with each header blanked (a line break, then spaces), offsets unchanged.

    Sentences then never cross a section, and a header's colon cannot pair with the next
    word as a cue (``FINDINGS: No effusion`` would read as ``: no`` looking backwards).
    """
    chars = list(text)
    for section in sections:
        if section.header_start < section.start:
            chars[section.header_start : section.start] = "\n" + " " * (
                section.start - section.header_start - 1
            )
    return "".join(chars)


def _clause(text: str, sentence: Sentence, start: int, end: int) -> str:
    """The piece of ``sentence`` around ``[start, end)`` between clause breaks."""
    left, right = sentence.start, sentence.end
    for found in _BREAK.finditer(text, sentence.start, sentence.end):
        if found.end() <= start:
            left = found.end()
        elif found.start() >= end:
            right = found.start()
            break
    return text[left:right]


def _aggregate(label: str, evidence: Sequence[Evidence]) -> Observation:
    statuses = {e.status for e in evidence}
    status = next((s for s in STATUSES[:3] if s in statuses), "absent")
    return Observation(label, status, tuple(evidence))

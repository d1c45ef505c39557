"""Mention rules for chest X-ray findings, read from ``resources/chexpert_observations.json``.

:class:`MentionRules` finds the phrases that name each CheXpert observation (or state its
absence by themselves), drops those inside an exclusion phrase, and keeps the longest match at
each place. It needs no spaCy, so the general clinical pipeline uses it too, to recognise
radiology findings in any text and to tell a radiology report from other text
(:meth:`MentionRules.report_score`).

Example:
    >>> rules = MentionRules()
    >>> text = "Small left pleural effusion, no pericardial effusion."
    >>> [(m.label, m.text) for m in rules.find(text)]
    [('Pleural Effusion', 'pleural effusion')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError

__all__ = [
    "NO_FINDING",
    "OBSERVATIONS",
    "OTHER_FINDING",
    "REPORT_CONTEXT_RULES",
    "RULES_PATH",
    "Mention",
    "MentionRules",
    "compile_phrases",
]

_RESOURCES = Path(__file__).resolve().parents[1] / "resources"
#: Mention, section and modifier rules.
RULES_PATH = _RESOURCES / "chexpert_observations.json"
#: ConText rules for report phrasing, added to the platform's.
REPORT_CONTEXT_RULES = _RESOURCES / "report_context_rules.json"
NO_FINDING = "No Finding"
#: The label of a finding outside CheXpert's 14 (it keeps No Finding from being positive).
OTHER_FINDING = "Other Finding"
#: CheXpert's 14 observations, in CheXpert's order.
OBSERVATIONS = (
    NO_FINDING,
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)


@dataclass(frozen=True)
class Mention:
    """A phrase naming an observation; ``absent`` when the phrase itself states absence."""

    label: str
    start: int
    end: int
    text: str
    absent: bool = False


@dataclass(frozen=True)
class _Rule:
    label: str
    mentions: tuple[re.Pattern[str], ...]
    negative: tuple[re.Pattern[str], ...]
    exclusions: tuple[re.Pattern[str], ...]


def compile_phrases(patterns: Iterable[str], where: str) -> tuple[re.Pattern[str], ...]:
    """Case-insensitive whole-word regular expressions.

    Raises:
        ConfigError: A pattern is not a valid regular expression.
    """
    try:
        return tuple(re.compile(rf"(?<![\w-])(?:{p})(?![\w-])", re.I) for p in patterns)
    except re.error as error:
        raise ConfigError(where, f"bad pattern ({error})", "fix the rules file") from error


class MentionRules:
    """The observations' mention, absence and exclusion phrases.

    Args:
        path: The rules file.

    Raises:
        ConfigError: The file is missing, not JSON, lacks ``observations``, names an
            observation that is not CheXpert's, or has a bad pattern.
    """

    def __init__(self, path: Path = RULES_PATH) -> None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(
                str(path), f"cannot read ({error})", "give a JSON rules file"
            ) from error
        if not isinstance(data.get("observations"), list):
            raise ConfigError(str(path), "no 'observations' list", "see chexpert_observations.json")
        self.data = data
        self.name = f"{path.stem}@{data.get('version', '0')}"
        self._rules = [
            _Rule(
                str(item["label"]),
                compile_phrases(item.get("mentions", []), item["label"]),
                compile_phrases(item.get("negative", []), item["label"]),
                compile_phrases(item.get("exclusions", []), item["label"]),
            )
            for item in data["observations"]
        ]
        unknown = {rule.label for rule in self._rules} - set(OBSERVATIONS)
        if unknown:
            raise ConfigError(
                str(path), f"unknown observations {sorted(unknown)}", "use CheXpert's names"
            )
        self._report_cues = compile_phrases(data.get("report_cues", []), "report_cues")
        other = data.get("other_findings", {})
        self._other = _Rule(
            OTHER_FINDING,
            compile_phrases(other.get("mentions", []), "other_findings"),
            (),
            compile_phrases(other.get("exclusions", []), "other_findings"),
        )

    def find(self, text: str, within: Sequence[tuple[int, int]] | None = None) -> list[Mention]:
        """Mentions in ``text``, by observation then position.

        Args:
            text: Any text.
            within: Keep only mentions starting inside one of these ``[start, end)`` spans
                (``None``: anywhere).
        """
        return [m for rule in self._rules for m in _matches(rule, text, within)]

    def find_other(
        self, text: str, within: Sequence[tuple[int, int]] | None = None
    ) -> list[Mention]:
        """Mentions of findings outside CheXpert's 14 (``other_findings``: granuloma,
        degenerative spine, hyperinflation...), labelled :data:`OTHER_FINDING`."""
        return _matches(self._other, text, within)

    def report_score(self, text: str) -> float:
        """How much ``text`` reads like a radiology report, in ``[0, 1]``.

        Half comes from imaging cues (``report_cues``: section headers, "chest x-ray",
        "lungs are clear", ...), half from finding mentions; each half is full at two hits.
        """
        cues = sum(len(p.findall(text)) for p in self._report_cues)
        findings = len(self.find(text))
        return 0.5 * min(cues, 2) / 2 + 0.5 * min(findings, 2) / 2


def _matches(rule: _Rule, text: str, within: Sequence[tuple[int, int]] | None) -> list[Mention]:
    """``rule``'s mentions in ``text``: longest first at each place, none inside an
    exclusion, none overlapping, each starting inside ``within`` (``None``: anywhere)."""
    excluded = [m.span() for p in rule.exclusions for m in p.finditer(text)]
    spans: list[tuple[int, int, bool]] = []
    for absent, patterns in ((True, rule.negative), (False, rule.mentions)):
        for pattern in patterns:
            for match in pattern.finditer(text):
                a, b = match.span()
                if not any(x <= a and b <= y for x, y in excluded):
                    spans.append((a, b, absent))
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0]), not s[2]))
    found: list[Mention] = []
    kept_end = -1
    for a, b, absent in spans:
        inside = within is None or any(x <= a < y for x, y in within)
        if a >= kept_end and inside:
            found.append(Mention(rule.label, a, b, text[a:b], absent))
            kept_end = b
    return found

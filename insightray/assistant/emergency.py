"""Emergency detection: rules with very high recall, aware of negation and misspellings.

The text is normalised (lower case, apostrophes dropped: ``can't`` -> ``cant``), words that
are not English words (not whole words of the MiniLM vocabulary) but are one or two edits
from an emergency keyword are corrected (``siezure`` -> ``seizure``, ``cant breath`` stays
matched by the patterns), and every rule of :data:`~insightray.assistant.emergency_rules.RULES`
is tried. A match does not count when a negation cue (``no``, ``denies``, ``without``...)
comes a few words before it in the same clause, when the clause places it in the past
(``last year``, ``history of``), or when the whole message is a general question that names
no one (``What are the signs of a stroke?``).

Example:
    >>> detector = EmergencyDetector()
    >>> detector.assess("My dad has chest pain and cant breath").is_emergency
    True
    >>> detector.assess("No chest pain today, just a cough").is_emergency
    False
    >>> detector.assess("What are the warning signs of a stroke?").is_emergency
    False
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insightray.assistant.emergency_rules import (
    ADVICE,
    HEALTH_WORDS,
    HISTORY_CUES,
    INFORMATION_FRAMES,
    KEYWORDS,
    NEGATION_CUES,
    PERSONAL_CUES,
    PSEUDO_NEGATIONS,
    QUESTION_STARTS,
    RULES,
    EmergencyRule,
)
from insightray.assistant.text import known_words

__all__ = [
    "EmergencyAssessment",
    "EmergencyConfig",
    "EmergencyDetector",
    "EmergencyMatch",
    "edit_distance",
]

_WORD = re.compile(r"[a-z]+")
_CLAUSE_BREAK = re.compile(
    r"[.;!?\n]|,\s*(?:but|however|although|though)\b|\b(?:but|however|although|though|except|yet)\b"
    r"|\b(?:and|,) (?:now )?(?=(?:i|im|ive|he|hes|she|shes|they|theyre|we|now)\b)"
)

#: "in a child", "for an adult", "in children": a kind of person, not a particular one.
_ANY_ONE = re.compile(
    r"\b(?:in|for|of|with|to) (?:a |an )?(?:child|children|kid|kids|baby|babies|infant"
    r"|infants|toddler|toddlers|adult|adults|person|people|teen|teenager|teenagers|woman|women"
    r"|man|men)\b"
)


@dataclass(frozen=True)
class EmergencyConfig:
    """Settings of :class:`EmergencyDetector`.

    Attributes:
        negation_window: Words before a match in which a negation cue negates it.
        correct_spelling: Correct near-misses of emergency keywords.
        vocabulary: A file of known words (one per line) never corrected; ``None`` uses
            the packaged MiniLM ``vocab.txt`` when present.
    """

    negation_window: int = 6
    correct_spelling: bool = True
    vocabulary: Path | None = None


@dataclass(frozen=True)
class EmergencyMatch:
    """A rule that matched: its name, category and the evidence text (normalised)."""

    rule: str
    category: str
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rule": self.rule, "category": self.category, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class EmergencyAssessment:
    """The verdict on a message.

    Attributes:
        is_emergency: At least one rule fired.
        matches: The rules that fired.
        negated: Evidence that matched but was negated, historical or informational.
        advice: What to do now (empty when not an emergency).
        normalized: The text the rules saw.
    """

    is_emergency: bool
    matches: tuple[EmergencyMatch, ...] = ()
    negated: tuple[str, ...] = ()
    advice: str = ""
    normalized: str = ""

    @property
    def category(self) -> str | None:
        """Category of the first rule that fired."""
        return self.matches[0].category if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "is_emergency": self.is_emergency,
            "category": self.category,
            "matches": [match.to_dict() for match in self.matches],
            "negated": list(self.negated),
            "advice": self.advice,
        }


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal-string-alignment distance (a swap of neighbours costs 1), capped at
    ``limit + 1``.

    Example:
        >>> edit_distance("siezure", "seizure"), edit_distance("unconcious", "unconscious")
        (1, 1)
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return min(previous[len(b)], limit + 1)


@dataclass
class _Compiled:
    rule: EmergencyRule
    groups: list[list[re.Pattern[str]]] = field(default_factory=list)


class EmergencyDetector:
    """Applies the emergency rules to a message.

    Args:
        rules: The rules (default :data:`~insightray.assistant.emergency_rules.RULES`).
        config: Negation window and spelling correction.
    """

    def __init__(
        self, rules: Sequence[EmergencyRule] = RULES, config: EmergencyConfig | None = None
    ) -> None:
        self.config = config or EmergencyConfig()
        self._rules = [_Compiled(rule, self.compile_groups(rule.groups)) for rule in rules]
        self._negation = re.compile(r"\b(?:" + "|".join(NEGATION_CUES) + r")\b")
        self._pseudo = re.compile(r"\b(?:" + "|".join(PSEUDO_NEGATIONS) + r")\b")
        self._history = re.compile(r"\b(?:" + "|".join(HISTORY_CUES) + r")\b")
        self._frames = re.compile(rf"\b(?:{INFORMATION_FRAMES})\b")
        self._question = re.compile(QUESTION_STARTS)
        self._personal = re.compile(PERSONAL_CUES)
        self._known = known_words(self.config.vocabulary) if self.config.correct_spelling else None
        self._corrections: dict[str, str] = {}

    @staticmethod
    def compile_groups(groups: Sequence[Sequence[str]]) -> list[list[re.Pattern[str]]]:
        """Rule groups (alternative patterns each) compiled as the detector matches them."""
        return [[re.compile(rf"\b(?:{p})") for p in group] for group in groups]

    def evidence(
        self,
        groups: Sequence[Sequence[re.Pattern[str]]],
        normalized: str,
        standing: int = 0,
    ) -> tuple[str, ...] | None:
        """One match per group, none negated or historical, or ``None`` when a group has
        none (``normalized`` is :meth:`normalize`'s output). The first ``standing`` groups
        name lasting conditions (a transplant "last year" still counts): only negation
        dismisses them."""
        found: list[str] = []
        for number, group in enumerate(groups):
            match = self._find(group, normalized, [], history=number >= standing)
            if match is None:
                return None
            found.append(match)
        return tuple(found)

    def normalize(self, text: str) -> str:
        """Lower case, no apostrophes, single spaces, emergency keywords spelled right.

        Example:
            >>> EmergencyDetector().normalize("I'm  havin a SIEZURE")
            'im havin a seizure'
        """
        lowered = text.lower().replace("\u2019", "'").replace("'", "").replace("`", "")
        lowered = re.sub(r"[ \t]+", " ", lowered).strip()
        if self._known is None:
            return lowered
        return _WORD.sub(lambda m: self._correct(m.group()), lowered)

    def _correct(self, word: str) -> str:
        known = self._known
        if (
            len(word) < 4
            or word in KEYWORDS
            or word in HEALTH_WORDS
            or (known is not None and word in known)
        ):
            return word
        if word not in self._corrections:
            limit = 2 if len(word) >= 8 else 1
            best, distance = word, limit + 1
            for keyword in sorted(KEYWORDS):
                if abs(len(keyword) - len(word)) <= limit and len(keyword) >= 4:
                    found = edit_distance(word, keyword, limit)
                    if found < distance:
                        best, distance = keyword, found
            self._corrections[word] = best if distance <= limit else word
        return self._corrections[word]

    def assess(self, text: str) -> EmergencyAssessment:
        """Decide whether ``text`` describes an emergency happening now."""
        normalized = self.normalize(text)
        informational = self.is_general_question(normalized)
        matches: list[EmergencyMatch] = []
        dismissed: list[str] = []
        for compiled in self._rules:
            evidence: list[str] = []
            for group in compiled.groups:
                found = self._find(group, normalized, dismissed)
                if found is None:
                    break
                evidence.append(found)
            else:
                if informational:
                    dismissed.extend(evidence)
                else:
                    matches.append(EmergencyMatch(compiled.rule.name, compiled.rule.category,
                                                  tuple(evidence)))  # fmt: skip
        advice = ""
        if matches:
            advice = ADVICE.get(matches[0].category, ADVICE["default"])
        return EmergencyAssessment(
            bool(matches), tuple(matches), tuple(dict.fromkeys(dismissed)), advice, normalized
        )

    def _find(
        self,
        patterns: Iterable[re.Pattern[str]],
        text: str,
        dismissed: list[str],
        history: bool = True,
    ) -> str | None:
        for pattern in patterns:
            for match in pattern.finditer(text):
                if self._dismissed(text, match.start(), match.end(), history):
                    dismissed.append(match.group())
                    continue
                return match.group()
        return None

    def _dismissed(self, text: str, start: int, end: int, history: bool = True) -> bool:
        """Negated or historical within the clause around ``start:end``."""
        clause_start = 0
        for found in _CLAUSE_BREAK.finditer(text, 0, start):
            clause_start = found.end()
        following = _CLAUSE_BREAK.search(text, end)
        clause_end = following.start() if following else len(text)
        before = self._pseudo.sub(" ", text[clause_start:start])
        window = " ".join(before.split()[-self.config.negation_window :])
        if self._negation.search(window):
            return True
        return history and bool(self._history.search(text[clause_start:clause_end]))

    def is_general_question(self, text: str) -> bool:
        """A question about facts that names no one (normalised text): no alarm. "In a
        child" or "for an adult" names no one in particular."""
        particular = _ANY_ONE.sub(" ", text)
        return bool(
            self._question.search(text)
            and self._frames.search(text)
            and not self._personal.search(particular)
        )

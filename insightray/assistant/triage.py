"""Triage: emergency, urgent, routine or self-care, from the rules in
:mod:`~insightray.assistant.triage_rules`.

The emergency detector decides ``emergency`` first; then every :class:`TriageRule` is tried
with the same negation, history and general-question handling, and with the patient's age
(``my 3 year old``, ``a 6 week old baby``, ``I am 70``; a child named without an age counts as
5), the duration (the ``Duration`` slots' ISO 8601 values, else the text) and a temperature
(``40 C``, ``104F``). The most urgent level among the rules that fired wins; nothing fired
means ``routine``.

Example:
    >>> triage = Triage()
    >>> triage.assess("My 3 year old has had a fever of 40 C for two days and now a rash").level
    'urgent'
    >>> triage.assess("I sprained my ankle but I can walk on it fine").level
    'self-care'
    >>> triage.assess("What causes gout?").level
    'routine'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from insightray.assistant.emergency import EmergencyAssessment, EmergencyDetector
from insightray.assistant.slots import Slot
from insightray.assistant.triage_rules import (
    ADVICE,
    CHILD_WORDS,
    LEVELS,
    TRIAGE_RULES,
    TriageRule,
)

__all__ = [
    "Triage",
    "TriageAssessment",
    "duration_hours",
    "patient_age",
    "temperature_celsius",
]

_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3,
    "couple of": 2, "several": 4,
}  # fmt: skip
_NUMBER = r"(\d+(?:\.\d+)?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT_YEARS = {"year": 1.0, "yr": 1.0, "month": 1 / 12, "week": 7 / 365, "day": 1 / 365}
_AGE = re.compile(rf"\b{_NUMBER}[ -]?(year|yr|month|week|day)s?[ -]?old\b")
_AGE_SELF = re.compile(
    r"\b(?:i am|im|i m|aged|age|who is|he is|she is|hes|shes)\s+(\d{1,3})\b"
    r"(?! ?(?:kg|lb|c|f|degrees|%))"
)
_INFANT = re.compile(r"\b(?:newborn|new born)\b")
_BABY = re.compile(r"\b(?:baby|infant)\b")
_CHILD = re.compile(rf"\b(?:{CHILD_WORDS})s?\b")
_TODDLER = re.compile(r"\btoddlers?\b")
_TEMPERATURE = re.compile(
    r"\b(\d{2,3}(?:\.\d)?)\s*(?:°|degrees?|deg)?\s*(c|f|celsius|fahrenheit|centigrade)?\b"
)
_TEMPERATURE_CUE = re.compile(r"fever|temp|temperature|thermometer|degrees|°")
_N = r"(\d+(?:\.\d+)?)"
_ISO = re.compile(rf"^P(?:{_N}Y)?(?:{_N}M)?(?:{_N}W)?(?:{_N}D)?(?:T(?:{_N}H)?(?:{_N}M)?)?$")
_DURATION_TEXT = re.compile(
    rf"\b(?:for|over|past|last|since)?\s*(?:the\s+)?(?:last|past)?\s*{_NUMBER}\s+"
    r"(hour|hr|day|night|week|month|year)s?\b(?![ -]?old)"
)
#: "last year", "next week": a time, not how long something has lasted.
_POINT_IN_TIME = re.compile(r"^(?:last|next|this|in (?:19|20)\d\d)\b", re.IGNORECASE)
_SINCE = {"since yesterday": 24.0, "since last night": 12.0, "since this morning": 6.0,
          "all day": 12.0, "all night": 10.0, "overnight": 10.0}  # fmt: skip
_HOURS = {"hour": 1.0, "hr": 1.0, "day": 24.0, "night": 24.0, "week": 168.0, "month": 720.0,
          "year": 8760.0}  # fmt: skip


def _number(word: str) -> float:
    return float(word) if word[0].isdigit() else float(_NUMBERS.get(word, 1))


def patient_age(text: str) -> float | None:
    """The patient's age in years from normalised text, or ``None`` when not said.

    Example:
        >>> patient_age("my 3 year old has a fever"), patient_age("my 6 week old baby")
        (3.0, 0.115)
        >>> patient_age("my son has a cough"), patient_age("i have a cough")
        (5.0, None)
    """
    found = _AGE.search(text)
    if found:
        return round(_number(found.group(1)) * _UNIT_YEARS[found.group(2)], 3)
    self_age = _AGE_SELF.search(text)
    if self_age and 0 < int(self_age.group(1)) < 120:
        return float(self_age.group(1))
    if _INFANT.search(text):
        return 0.05
    if _BABY.search(text):
        return 0.5
    if _TODDLER.search(text):
        return 2.0
    if _CHILD.search(text):
        return 5.0
    return None


def temperature_celsius(text: str) -> float | None:
    """The highest body temperature the text gives, in Celsius (Fahrenheit converted).

    Example:
        >>> temperature_celsius("a fever of 40 c"), temperature_celsius("temp 102.2f")
        (40.0, 39.0)
        >>> temperature_celsius("my 3 year old") is None
        True
    """
    best: float | None = None
    for match in _TEMPERATURE.finditer(text):
        value, unit = float(match.group(1)), (match.group(2) or "")
        near = text[max(0, match.start() - 40) : match.end() + 12]
        if not unit and not _TEMPERATURE_CUE.search(near):
            continue
        if unit.startswith("f") or (not unit and 95 <= value <= 110):
            value = (value - 32) * 5 / 9
        if 34 <= value <= 44:
            best = max(best or 0.0, round(value, 1))
    return best


def duration_hours(text: str, slots: Sequence[Slot] = ()) -> float | None:
    """How long the problem has lasted, in hours: the longest ``Duration`` slot (ISO 8601
    value), else a duration in the text.

    Example:
        >>> duration_hours("vomiting for 24 hours"), duration_hours("a cough for 3 weeks")
        (24.0, 504.0)
        >>> duration_hours("since yesterday"), duration_hours("a headache") is None
        (24.0, True)
    """
    found: list[float] = []
    for slot in slots:
        if slot.type == "Duration" and slot.value and not _POINT_IN_TIME.match(slot.text):
            parsed = _ISO.match(slot.value)
            if parsed:
                parts = [float(g) if g else 0.0 for g in parsed.groups()]
                years, months, weeks, days, hours, minutes = parts
                found.append(
                    years * 8760 + months * 720 + weeks * 168 + days * 24 + hours + minutes / 60
                )
    if not found:
        for match in _DURATION_TEXT.finditer(text):
            found.append(_number(match.group(1)) * _HOURS[match.group(2)])
        found += [hours for phrase, hours in _SINCE.items() if phrase in text]
    positive = [f for f in found if f > 0]
    return max(positive) if positive else None


@dataclass(frozen=True)
class TriageAssessment:
    """The triage of a message.

    Attributes:
        level: ``emergency``, ``urgent``, ``routine`` or ``self-care``.
        reasons: The rules that fired at that level (names).
        advice: What to do now at that level.
        age: The patient's age in years, when said.
        hours: How long it has lasted, in hours, when said.
        celsius: The temperature given, in Celsius.
        sources: The public guidance behind the reasons.
        emergency: The emergency detector's verdict.
    """

    level: str
    reasons: tuple[str, ...] = ()
    advice: str = ""
    age: float | None = None
    hours: float | None = None
    celsius: float | None = None
    sources: tuple[str, ...] = ()
    emergency: EmergencyAssessment | None = field(default=None, repr=False)

    @property
    def acts_now(self) -> bool:
        """Urgent or emergency: the answer leads with what to do now."""
        return self.level in ("emergency", "urgent")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "level": self.level,
            "reasons": list(self.reasons),
            "advice": self.advice,
            "age_years": self.age,
            "duration_hours": self.hours,
            "temperature_c": self.celsius,
            "sources": list(self.sources),
        }


class Triage:
    """Applies the emergency rules, then :data:`TRIAGE_RULES`, to a message.

    Args:
        detector: The emergency detector (its normalisation and negation handling are
            reused for the triage rules).
        rules: The triage rules.
    """

    def __init__(
        self,
        detector: EmergencyDetector | None = None,
        rules: Sequence[TriageRule] = TRIAGE_RULES,
    ) -> None:
        self.detector = detector or EmergencyDetector()
        self.rules = [(rule, self.detector.compile_groups(rule.groups)) for rule in rules]

    def assess(
        self,
        text: str,
        slots: Sequence[Slot] = (),
        emergency: EmergencyAssessment | None = None,
    ) -> TriageAssessment:
        """The level of ``text`` (``slots`` give durations; ``emergency`` an assessment
        already made of the same text)."""
        emergency = emergency or self.detector.assess(text)
        normalized = emergency.normalized or self.detector.normalize(text)
        age = patient_age(normalized)
        hours = duration_hours(normalized, slots)
        celsius = temperature_celsius(normalized)
        fired: list[TriageRule] = []
        if not self.detector.is_general_question(normalized):
            fired = [
                rule
                for rule, groups in self.rules
                if self._conditions_hold(rule, age, hours, celsius)
                and self.detector.evidence(groups, normalized, rule.standing) is not None
            ]
        if emergency.is_emergency:
            names = tuple(m.rule for m in emergency.matches)
            advice = emergency.advice or ADVICE["emergency"]
            return TriageAssessment("emergency", names, advice, age, hours, celsius,
                                    ("emergency rules",), emergency)  # fmt: skip
        level = min((rule.level for rule in fired), key=LEVELS.index, default="routine")
        chosen = [rule for rule in fired if rule.level == level]
        return TriageAssessment(
            level,
            tuple(rule.name for rule in chosen),
            ADVICE[level],
            age,
            hours,
            celsius,
            tuple(dict.fromkeys(rule.source for rule in chosen if rule.source)),
            emergency,
        )

    @staticmethod
    def _conditions_hold(
        rule: TriageRule, age: float | None, hours: float | None, celsius: float | None
    ) -> bool:
        if rule.max_age is not None and (age is None or age >= rule.max_age):
            return False
        if rule.min_age is not None and age is not None and age < rule.min_age:
            return False
        if rule.min_hours is not None and (hours is None or hours < rule.min_hours):
            return False
        if rule.max_hours is not None and hours is not None and hours >= rule.max_hours:
            return False
        return rule.min_celsius is None or (celsius is not None and celsius >= rule.min_celsius)

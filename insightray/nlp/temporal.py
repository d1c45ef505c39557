"""Temporal expressions in clinical text, normalised to ISO 8601 where possible.

Found: ``3 days ago``, ``two weeks prior`` (kind ``ago``); ``for two weeks``, ``for the past
3 days``, ``x3 days``, ``a 2-day history`` (``duration``); ``since 2019``, ``since March
2020``, ``since yesterday`` (``since``); ``in 2015``, ``March 2020``, ``2024-05-01``
(``date``); ``yesterday``, ``last night``, ``last week`` (``relative``).

``value`` is an ISO 8601 duration (``P3D``, ``PT4H``, ``P2W``) or calendar value (``2019``,
``2020-03``, ``2024-05-01``); vague amounts (``a few days``) keep ``value=None``. Given a
reference date, ``date`` says when: the day or period something happened, or its onset for a
duration. Number words, units and relative phrases are data, in ``context_rules.json``.

Example:
    >>> from datetime import date
    >>> found = TemporalTagger().find("Fever 3 days ago, cough since 2019.", date(2024, 5, 10))
    >>> [(t.text, t.kind, t.value, t.date) for t in found]
    [('3 days ago', 'ago', 'P3D', '2024-05-07'), ('since 2019', 'since', '2019', '2019')]
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError

__all__ = ["RULES_PATH", "TemporalExpression", "TemporalTagger", "as_date"]

RULES_PATH = Path(__file__).resolve().parent / "resources" / "context_rules.json"
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_DAYS_PER = {"TM": 1 / 1440, "TH": 1 / 24, "D": 1.0, "W": 7.0, "M": 30.44, "Y": 365.25}


@dataclass(frozen=True)
class TemporalExpression:
    """A time phrase and what it means.

    Attributes:
        text: The phrase as written.
        start: Character offset of its first character.
        end: Character offset just after it.
        kind: ``ago``, ``duration``, ``since``, ``date`` or ``relative``.
        value: ISO 8601 duration or calendar value; ``None`` when vague.
        date: With a reference date: when it happened (or began), ISO; else ``None``.
        days_back: Roughly how many days before the reference date it happened or began.
    """

    text: str
    start: int
    end: int
    kind: str
    value: str | None
    date: str | None = None
    days_back: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


def as_date(value: date | datetime | str | None) -> date | None:
    """A reference date from a ``date``, ``datetime`` or ISO string (``None`` passes through).

    Raises:
        ConfigError: The string is not an ISO date.
    """
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(value[:10])
    except ValueError as error:
        raise ConfigError(value, "not an ISO date", "write it as YYYY-MM-DD") from error


def _minus_months(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _alternatives(words: Mapping[str, Any]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


class TemporalTagger:
    """Finds and normalises temporal expressions with regular expressions built from data.

    Args:
        rules_path: JSON with a ``temporal`` section (``numbers``, ``units``, ``relative``).
    """

    def __init__(self, rules_path: Path = RULES_PATH) -> None:
        section = json.loads(rules_path.read_text(encoding="utf-8"))["temporal"]
        self.numbers: dict[str, int | None] = dict(section["numbers"])
        self.units: dict[str, str] = dict(section["units"])
        self.relative: dict[str, list[str]] = dict(section["relative"])
        number = rf"(?P<num>\d+(?:\.\d+)?|{_alternatives(self.numbers)})"
        unit = rf"(?P<unit>{_alternatives(self.units)})"
        amount = rf"{number}[\s-]*{unit}"
        month = rf"(?P<month>{_alternatives(_MONTHS)})\.?"
        year = r"(?P<year>(?:19|20)\d\d)"
        relative = _alternatives(self.relative)
        self._patterns: list[tuple[str, str]] = [
            ("ago", rf"\b{amount}\s+(?:ago|prior|before|earlier|back)\b"),
            (
                "duration",
                rf"\b(?:for|over|during|within|x)\s*(?:the\s+)?(?:past|last|previous)?\s*{amount}\b",
            ),
            ("duration", rf"\b{amount}\s+(?:history|duration)\b"),
            ("since", rf"\bsince\s+(?:{month}\s+)?{year}\b"),
            ("since_relative", rf"\bsince\s+(?P<rel>{relative})\b"),
            ("iso", r"\b(?P<iso>(?:19|20)\d\d-\d\d-\d\d)\b"),
            ("us_date", r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>(?:19|20)\d\d)\b"),
            ("date", rf"\b(?:{month}\s+){year}\b"),
            ("date", rf"\b(?:in|during|from)\s+{year}\b"),
            ("relative", rf"\b(?P<rel>{relative})\b"),
        ]
        self._compiled = [(kind, re.compile(p, re.IGNORECASE)) for kind, p in self._patterns]

    def find(
        self, text: str, reference: date | datetime | str | None = None
    ) -> list[TemporalExpression]:
        """All temporal expressions in ``text``, left to right, longest first on overlap."""
        ref = as_date(reference)
        found: list[TemporalExpression] = []
        for kind, pattern in self._compiled:
            for match in pattern.finditer(text):
                if any(match.start() < t.end and t.start < match.end() for t in found):
                    continue
                expression = self._normalise(kind, match, ref)
                if expression is not None:
                    found.append(expression)
        return sorted(found, key=lambda t: t.start)

    def _amount(self, match: re.Match[str]) -> tuple[str | None, float | None, str]:
        """ISO duration, count and unit code of ``<number> <unit>`` (vague: no ISO, no count)."""
        raw, unit = match.group("num").lower(), self.units[match.group("unit").lower()]
        number = self.numbers.get(raw) if not raw[0].isdigit() else None
        count = float(raw) if raw[0].isdigit() else None if number is None else float(number)
        if count is None:
            return None, None, unit
        shown = f"{count:g}"
        iso = f"PT{shown}{unit[1]}" if unit.startswith("T") else f"P{shown}{unit}"
        return iso, count, unit

    def _normalise(
        self, kind: str, match: re.Match[str], ref: date | None
    ) -> TemporalExpression | None:
        groups = match.groupdict()
        value: str | None
        when: date | None = None
        granularity = "day"
        days: float | None = None
        if kind in ("ago", "duration"):
            value, count, unit = self._amount(match)
            days = None if count is None else count * _DAYS_PER[unit]
            if ref and count is not None and days is not None:
                if unit in ("M", "Y") and count.is_integer():
                    when = _minus_months(ref, int(count) * (12 if unit == "Y" else 1))
                    granularity = "month" if unit == "M" else "year"
                else:
                    when = ref - timedelta(days=int(days))
        elif kind in ("since", "date"):
            year, month = int(groups["year"]), groups.get("month")
            value = f"{year}-{_MONTHS[month.lower()]:02d}" if month else str(year)
            kind = kind if kind == "since" else "date"
            if ref:
                start = date(year, _MONTHS[month.lower()] if month else 1, 1)
                days = float((ref - start).days)
            return self._expression(match, kind, value, value, days)
        elif kind in ("iso", "us_date"):
            try:
                if kind == "iso":
                    when = date.fromisoformat(groups["iso"])
                else:
                    when = date(int(groups["y"]), int(groups["m"]), int(groups["d"]))
            except ValueError:
                return None
            days = float((ref - when).days) if ref else None
            return self._expression(match, "date", when.isoformat(), when.isoformat(), days)
        else:  # relative, since_relative
            value, granularity = self.relative[groups["rel"].lower()]
            kind = "since" if kind == "since_relative" else "relative"
            days = _DAYS_PER[value[-1]] * float(value[1:-1])
            if ref:
                when = ref - timedelta(days=int(days)) if value[-1] in "DW" else None
                if value[-1] in "MY":
                    when = _minus_months(ref, int(value[1:-1]) * (12 if value[-1] == "Y" else 1))
        return self._expression(match, kind, value, _format(when, granularity), days)

    @staticmethod
    def _expression(
        match: re.Match[str], kind: str, value: str | None, when: str | None, days: float | None
    ) -> TemporalExpression:
        return TemporalExpression(
            text=match.group(0),
            start=match.start(),
            end=match.end(),
            kind=kind,
            value=value,
            date=when,
            days_back=None if days is None else round(days, 2),
        )


def _format(when: date | None, granularity: str) -> str | None:
    if when is None:
        return None
    if granularity == "year":
        return str(when.year)
    if granularity == "month":
        return f"{when.year}-{when.month:02d}"
    if granularity == "week":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.isoformat()

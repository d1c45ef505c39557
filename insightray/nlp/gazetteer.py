"""Rule entities: curated term lists (symptoms, medications, anatomy, procedures, diseases)
and regular expressions for doses and dosing frequencies.

Terms live in ``insightray/nlp/resources/*.txt`` (one per line, ``#`` comments; each file's
header gives its source and licence). Matching is case-insensitive, word-exact and
longest-first over :func:`~insightray.models.text.split_words` words, so a term matches only
whole words ("chest pain" wins over "chest"). A ``DOSAGE`` ("500 mg", "10mg/kg", "bid",
"twice daily") is kept only when it follows a medication in the same sentence, because
numbers with units ("70 kg") are often not doses.

Example:
    >>> gazetteer = Gazetteer.default()
    >>> [(e.type, e.text) for e in gazetteer.find("Took ibuprofen 400 mg bid for knee pain.")]
    [('MEDICATION', 'ibuprofen'), ('DOSAGE', '400 mg'), ('DOSAGE', 'bid'), ('SYMPTOM', 'knee pain')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from insightray.errors import ConfigError
from insightray.models.text import TermIndex, split_words

__all__ = [
    "DOSAGE",
    "RESOURCE_FILES",
    "RULE_TYPES",
    "Entity",
    "Gazetteer",
    "load_terms",
]

#: Term files per entity type, in ``insightray/nlp/resources``.
RESOURCE_FILES: dict[str, tuple[str, ...]] = {
    "ANATOMY": ("anatomy.txt",),
    "DISEASE": ("diseases.txt",),
    "MEDICATION": ("medications.txt",),
    "PROCEDURE": ("procedures.txt",),
    "SYMPTOM": ("symptoms.txt", "symptoms_disease_symptom.txt"),
}
DOSAGE = "DOSAGE"
#: Every type the rule layer can find.
RULE_TYPES = (*RESOURCE_FILES, DOSAGE)

_UNIT = r"(?:mg|mcg|µg|ug|g|kg|ml|mL|l|L|units?|IU|iu|mEq|meq|mmol|puffs?|tablets?|tabs?|caps?)"
_PER = r"(?:\s*/\s*(?:kg|m2|m²|day|d|dose|hr|h|hour|ml|mL|min))?"
_AMOUNT = rf"\d+(?:[.,]\d+)?(?:\s*(?:-|to)\s*\d+(?:[.,]\d+)?)?\s*{_UNIT}{_PER}"
_FREQUENCY = (
    r"b\.?i\.?d\.?|t\.?i\.?d\.?|q\.?i\.?d\.?|q\.?d\.?|qhs|prn|tds|qds|bd|od|q\s?\d+\s?h"
    r"|(?:once|twice|three times|four times)\s+(?:a\s+|per\s+)?(?:day|daily|week|weekly)"
    r"|every\s+\d+\s+(?:hours|days)|every\s+(?:morning|evening|night)|at bedtime|as needed"
)
_DOSAGE = re.compile(rf"(?<![\w.])(?:{_AMOUNT}|{_FREQUENCY})(?![\w])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;]\s|\n")
_DOSE_WINDOW = 60


@dataclass(frozen=True)
class Entity:
    """One entity: its type, character offsets ``[start, end)`` into the text, the text itself
    and where it came from (``"model"`` or ``"rules"``).

    Example:
        >>> Entity("SYMPTOM", 0, 5, "fever", "rules").to_dict()["end"]
        5
    """

    type: str
    start: int
    end: int
    text: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _read_terms(file_name: str) -> list[str]:
    text = resources.files("insightray.nlp").joinpath("resources", file_name).read_text("utf-8")
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def load_terms(types: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    """The packaged term lists by type (all of :data:`RESOURCE_FILES` by default).

    Raises:
        ConfigError: A type has no term list.

    Example:
        >>> "metformin" in load_terms(["MEDICATION"])["MEDICATION"]
        True
    """
    wanted = list(RESOURCE_FILES) if types is None else list(types)
    unknown = sorted(set(wanted) - set(RESOURCE_FILES))
    if unknown:
        raise ConfigError(
            ", ".join(unknown), "no term list for this type", f"use {', '.join(RESOURCE_FILES)}"
        )
    return {
        name: tuple(dict.fromkeys(t for f in RESOURCE_FILES[name] for t in _read_terms(f)))
        for name in wanted
    }


class Gazetteer:
    """Finds term-list entities and doses in text.

    Args:
        terms: Term strings by entity type.
        dosage: Also find doses and frequencies after medications (type ``DOSAGE``).
    """

    def __init__(self, terms: Mapping[str, Iterable[str]], *, dosage: bool = True) -> None:
        self.index = TermIndex(terms)
        self.dosage = dosage

    @classmethod
    def default(cls, types: Sequence[str] | None = None) -> Gazetteer:
        """The packaged lists; ``types`` picks some of :data:`RULE_TYPES` (default all)."""
        wanted = list(RULE_TYPES) if types is None else list(types)
        unknown = sorted(set(wanted) - set(RULE_TYPES))
        if unknown:
            raise ConfigError(
                ", ".join(unknown), "the rule layer has no such type", f"use {RULE_TYPES}"
            )
        return cls(load_terms(t for t in wanted if t != DOSAGE), dosage=DOSAGE in wanted)

    @property
    def types(self) -> tuple[str, ...]:
        """Entity types this gazetteer can find."""
        return (*self.index.types, DOSAGE) if self.dosage else self.index.types

    def find(self, text: str) -> list[Entity]:
        """All rule entities in ``text``, ordered by start offset, none overlapping."""
        words = split_words(text)
        found = [
            Entity(kind, words[first][1], words[end - 1][2], "", "rules")
            for first, end, kind in self.index.find([word for word, _, _ in words])
        ]
        if self.dosage:
            found += self._doses(text, [e for e in found if e.type == "MEDICATION"], found)
        found.sort(key=lambda e: e.start)
        return [Entity(e.type, e.start, e.end, text[e.start : e.end], e.source) for e in found]

    def _doses(self, text: str, medications: list[Entity], taken: list[Entity]) -> list[Entity]:
        doses: list[Entity] = []
        for match in _DOSAGE.finditer(text):
            start, end = match.span()
            if any(e.start < end and start < e.end for e in taken):
                continue
            follows = any(
                0 <= start - m.end <= _DOSE_WINDOW and not _SENTENCE_END.search(text, m.end, start)
                for m in medications
            )
            if follows:
                doses.append(Entity(DOSAGE, start, end, "", "rules"))
        return doses

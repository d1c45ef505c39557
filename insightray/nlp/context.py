"""Context of clinical entities: negation, uncertainty, history, hypotheticals, experiencer, time.

Every entity span handed in gets the ConText algorithm (NegEx's successor, as implemented by
medspaCy) with medspaCy's shipped English rules plus ours in ``resources/context_rules.json``,
which fix the classic hard cases: ``is negative for X``, pseudo-negations (``not only X``,
``no change in X``), ``X cannot be excluded``, ``family history of X``, informants (``mother
reports he has X``), other experiencers (``his friend has X``) and termination at ``but``,
``however``, ``;`` and the like. Sentences come from PyRuSH. Temporal expressions
(:mod:`insightray.nlp.temporal`) attach to the entities of their clause; an entity whose
onset lies more than 14 days back (configurable) counts as historical, as in ConText.

Example:
    >>> analyzer = ContextAnalyzer()
    >>> text = "No fever but has cough for 3 days."
    >>> result = analyzer.analyze(text, [("PROBLEM", 3, 8, "fever"), ("PROBLEM", 17, 22, "cough")])
    >>> [(e.text, e.negated, [t.value for t in e.temporal]) for e in result.entities]
    [('fever', True, []), ('cough', False, ['P3D'])]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError
from insightray.nlp.temporal import RULES_PATH, TemporalExpression, TemporalTagger

__all__ = [
    "RULES_PATH",
    "ContextAnalyzer",
    "ContextConfig",
    "ContextResult",
    "ContextualEntity",
    "Cue",
    "Entity",
    "Sentence",
    "as_entity",
]

_GROUP = "insightray_targets"
_CLAUSE_BREAK = re.compile(r";|\b(?:but|however|although|though|whereas|except)\b", re.I)
_EXPERIENCER = {"FAMILY": "family", "OTHER_EXPERIENCER": "other"}


@dataclass(frozen=True)
class Entity:
    """An entity span: its type, character offsets ``[start, end)`` and text."""

    type: str
    start: int
    end: int
    text: str


def as_entity(item: Any) -> Entity:
    """Accept a ``(type, start, end, text)`` tuple, a mapping, or an object with ``type`` (or
    ``label``), ``start``, ``end`` and ``text`` attributes.

    Raises:
        ConfigError: It is none of these.

    Example:
        >>> as_entity(("DISEASE", 0, 5, "fever"))
        Entity(type='DISEASE', start=0, end=5, text='fever')
    """
    if isinstance(item, Entity):
        return item
    if isinstance(item, tuple | list) and len(item) == 4:
        return Entity(str(item[0]), int(item[1]), int(item[2]), str(item[3]))
    source = item if isinstance(item, Mapping) else getattr(item, "__dict__", {})
    kind = source.get("type", source.get("label", getattr(item, "type", None)))
    try:
        start = int(source.get("start", getattr(item, "start", None)))
        end = int(source.get("end", getattr(item, "end", None)))
        text = str(source.get("text", getattr(item, "text", "")))
    except (TypeError, ValueError) as error:
        raise ConfigError(
            repr(item)[:40], "not an entity", "give (type, start, end, text)"
        ) from error
    return Entity(str(kind or "ENTITY"), start, end, text)


@dataclass(frozen=True)
class Cue:
    """A context cue that modifies an entity: its ConText category and the cue's text."""

    category: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ContextualEntity:
    """An entity with its context.

    Attributes:
        type / start / end / text: The entity span.
        negated: Said to be absent (``denies fever``).
        uncertain: Possible, suspected or to be ruled out.
        historical: From the past (``history of MI``, or onset over 14 days back).
        hypothetical: Conditional or future (``return if fever``).
        experiencer: ``patient``, ``family`` or ``other``.
        temporal: Time expressions in the entity's clause.
        cues: The cues that set the attributes.
    """

    type: str
    start: int
    end: int
    text: str
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    hypothetical: bool = False
    experiencer: str = "patient"
    temporal: tuple[TemporalExpression, ...] = ()
    cues: tuple[Cue, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class Sentence:
    """A sentence: character offsets ``[start, end)`` and text."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ContextResult:
    """Sentences, entities with context, and every temporal expression found."""

    sentences: tuple[Sentence, ...]
    entities: tuple[ContextualEntity, ...]
    temporal: tuple[TemporalExpression, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class ContextConfig:
    """ConText settings.

    Attributes:
        rules_path: JSON with ``context_rules`` (medspaCy format) and a ``temporal`` section.
        medspacy_rules: Also load medspaCy's shipped English rules.
        max_scope: Limit every cue's scope to this many tokens (``None``: the sentence).
        historical_after_days: Onset further back than this makes an entity historical
            (``None`` turns this off).
        extra_rules: More JSON files of ``context_rules`` (for example the radiology report
            rules), added after ``rules_path``'s.
    """

    rules_path: Path = RULES_PATH
    medspacy_rules: bool = True
    max_scope: int | None = None
    historical_after_days: float | None = 14.0
    extra_rules: tuple[Path, ...] = ()


class ContextAnalyzer:
    """Runs sentence splitting, ConText and temporal tagging over given entity spans.

    Building one loads spaCy and medspaCy (about a second); reuse it across texts.
    """

    def __init__(self, config: ContextConfig | None = None) -> None:
        import medspacy
        from loguru import logger
        from medspacy.context import ConTextRule

        logger.disable("PyRuSH")  # PyRuSH logs DEBUG lines for every document otherwise
        self.config = config or ContextConfig()
        rules = [
            ConTextRule.from_dict({**rule, "literal": f"insightray: {rule['literal']}"})
            for path in (self.config.rules_path, *self.config.extra_rules)
            for rule in json.loads(path.read_text(encoding="utf-8")).get("context_rules", [])
        ]
        self._nlp = medspacy.load(medspacy_enable=["medspacy_pyrush"])
        self._context = self._nlp.add_pipe(
            "medspacy_context",
            config={
                "rules": "default" if self.config.medspacy_rules else None,
                "input_span_type": "group",
                "span_group_name": _GROUP,
                "span_attrs": None,
                "max_scope": self.config.max_scope,
            },
        )
        self._context.add(rules)
        self._temporal = TemporalTagger(self.config.rules_path)

    def sentences(self, text: str) -> list[Sentence]:
        """PyRuSH sentences of ``text``."""
        return self._sentences(self._split(text))

    def _split(self, text: str) -> Any:
        doc = self._nlp.make_doc(text)
        for name, component in self._nlp.pipeline:
            if name != "medspacy_context":
                doc = component(doc)
        return doc

    @staticmethod
    def _sentences(doc: Any) -> list[Sentence]:
        return [Sentence(s.start_char, s.end_char, s.text) for s in doc.sents]

    def analyze(
        self,
        text: str,
        entities: Iterable[Any],
        reference_date: date | datetime | str | None = None,
    ) -> ContextResult:
        """Context attributes for every entity in ``entities`` (any order, overlaps allowed).

        Args:
            text: The document.
            entities: ``(type, start, end, text)`` tuples or objects (see :func:`as_entity`);
                offsets index ``text``.
            reference_date: The note's date, to turn relative times into dates.

        Returns:
            Sentences, the entities in input order with context, and all temporal expressions.
        """
        from spacy.tokens import Span

        items = [as_entity(item) for item in entities]
        doc = self._split(text)
        spans: list[Any] = []
        for item in items:
            span = doc.char_span(item.start, item.end, alignment_mode="expand")
            spans.append(None if span is None else Span(doc, span.start, span.end, item.type))
        doc.spans[_GROUP] = [span for span in spans if span is not None]
        doc = self._context(doc)
        modifiers: dict[tuple[int, int, str], tuple[Any, ...]] = {
            (s.start, s.end, s.label_): s._.modifiers for s in doc.spans[_GROUP]
        }
        times = self._temporal.find(text, reference_date)
        clauses = _clauses(text, self._sentences(doc))
        result = []
        for item, span in zip(items, spans, strict=True):
            found = () if span is None else modifiers.get((span.start, span.end, span.label_), ())
            cues = tuple(_cue(doc, modifier) for modifier in found)
            result.append(self._entity(item, cues, times, clauses))
        return ContextResult(tuple(self._sentences(doc)), tuple(result), tuple(times))

    def _entity(
        self,
        item: Entity,
        cues: tuple[Cue, ...],
        times: Sequence[TemporalExpression],
        clauses: Sequence[tuple[int, int]],
    ) -> ContextualEntity:
        categories = {cue.category for cue in cues}
        clause = next(((a, b) for a, b in clauses if a <= item.start < b), (item.start, item.end))
        temporal = tuple(t for t in times if clause[0] <= t.start < clause[1])
        limit = self.config.historical_after_days
        long_ago = limit is not None and any(
            t.kind in ("ago", "relative", "date") and (t.days_back or 0) > limit for t in temporal
        )
        experiencer = next((_EXPERIENCER[c] for c in _EXPERIENCER if c in categories), "patient")
        return ContextualEntity(
            type=item.type,
            start=item.start,
            end=item.end,
            text=item.text,
            negated="NEGATED_EXISTENCE" in categories,
            uncertain="POSSIBLE_EXISTENCE" in categories,
            historical="HISTORICAL" in categories or long_ago,
            hypothetical="HYPOTHETICAL" in categories,
            experiencer=experiencer,
            temporal=temporal,
            cues=cues,
        )


def _clauses(text: str, sentences: Sequence[Sentence]) -> list[tuple[int, int]]:
    """Sentence pieces between clause breaks (``but``, ``however``, ``;`` ...)."""
    pieces: list[tuple[int, int]] = []
    for sentence in sentences or [Sentence(0, len(text), text)]:
        start = sentence.start
        for found in _CLAUSE_BREAK.finditer(text, sentence.start, sentence.end):
            pieces.append((start, found.start()))
            start = found.start()
        pieces.append((start, sentence.end))
    return pieces


def _cue(doc: Any, modifier: Any) -> Cue:
    start, end = modifier.modifier_span
    span = doc[start:end]
    return Cue(str(modifier.category), span.text, span.start_char, span.end_char)

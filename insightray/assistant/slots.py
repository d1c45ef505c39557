"""Slot filling: Disease, Symptom, Medication, Duration, Severity and Location in a message.

Entities come from :class:`insightray.nlp.ner.NerTagger` (its term lists; the learned tagger
is optional because it costs far more than the rest of a turn on a CPU) plus the topics of
the knowledge index (MedQuAD focus names and synonyms) as extra diseases. Negation,
durations and experiencer come from :class:`insightray.nlp.context.ContextAnalyzer`
(ConText). When :mod:`insightray.nlp` cannot be imported, a small gazetteer and a NegEx-style
rule written here take over, with a warning.

Example:
    >>> filler = SlotFiller(SlotConfig(use_nlp=False))
    >>> [(s.type, s.text, s.negated) for s in filler.extract("No fever but a bad cough")]
    [('Symptom', 'fever', True), ('Severity', 'bad', False), ('Symptom', 'cough', False)]
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from insightray.assistant.text import known_words

__all__ = ["SLOT_TYPES", "Slot", "SlotConfig", "SlotFiller", "slots_by_type"]

SLOT_TYPES = ("Disease", "Symptom", "Medication", "Duration", "Severity", "Location")
#: NER entity type -> slot type.
ENTITY_SLOTS = {
    "DISEASE": "Disease",
    "SYMPTOM": "Symptom",
    "MEDICATION": "Medication",
    "ANATOMY": "Location",
}
SEVERITY = re.compile(
    r"\b(?:mild(?:ly)?|slight(?:ly)?|moderate(?:ly)?|severe(?:ly)?|bad|really bad|very bad"
    r"|terrible|awful|excruciating|unbearable|intense|sharp|dull|worst|extreme(?:ly)?"
    r"|(?:10|[0-9])\s*(?:/|out of)\s*10)\b",
    re.IGNORECASE,
)
DURATION = re.compile(
    r"\b(?:for|since|over|in|during)\s+(?:the\s+)?(?:last|past)?\s*(?:\d+|a|an|one|two|three|four"
    r"|five|six|seven|eight|nine|ten|a few|several|many)?\s*(?:minutes?|hours?|days?|weeks?"
    r"|months?|years?|yesterday|last night|this morning)\b|\b(?:\d+|a|one|two|three|few)\s+"
    r"(?:days?|weeks?|months?|years?)\s+ago\b",
    re.IGNORECASE,
)
#: Used only when insightray.nlp is unavailable.
FALLBACK_TERMS: dict[str, tuple[str, ...]] = {
    "DISEASE": (
        "diabetes", "type 2 diabetes", "type 1 diabetes", "asthma", "hypertension",
        "high blood pressure", "flu", "influenza", "covid-19", "covid", "pneumonia",
        "migraine", "gout", "arthritis", "cancer", "breast cancer", "stroke", "heart disease",
        "depression", "anxiety", "chickenpox", "measles", "malaria", "tuberculosis",
        "hepatitis", "hiv", "lupus", "psoriasis", "eczema", "shingles", "kidney stones",
        "glaucoma", "anemia", "obesity", "osteoporosis", "alzheimer's disease",
        "parkinson's disease", "epilepsy", "celiac disease", "lyme disease",
    ),
    "SYMPTOM": (
        "fever", "cough", "headache", "pain", "chest pain", "back pain", "nausea",
        "vomiting", "diarrhea", "fatigue", "dizziness", "rash", "itching", "swelling",
        "shortness of breath", "sore throat", "runny nose", "chills", "sweating",
        "weight loss", "bleeding", "numbness", "weakness", "constipation", "insomnia",
    ),
    "MEDICATION": (
        "aspirin", "ibuprofen", "acetaminophen", "paracetamol", "tylenol", "advil",
        "metformin", "insulin", "amoxicillin", "lisinopril", "atorvastatin", "prednisone",
        "omeprazole", "warfarin", "antibiotics", "levothyroxine", "albuterol",
    ),
    "ANATOMY": (
        "head", "chest", "back", "lower back", "stomach", "abdomen", "knee", "leg", "arm",
        "throat", "neck", "shoulder", "foot", "hand", "eye", "ear", "skin", "heart", "lungs",
    ),
}  # fmt: skip
_NEGATION = re.compile(
    r"\b(?:no|not|never|without|denies|denied|negative for|free of|don't have|doesn't have"
    r"|do not have|does not have|haven't had|hasn't had|no longer)\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[.;!?\n]|\b(?:but|however|although|though|except)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Slot:
    """A filled slot: type, text and offsets in the message, negation and a normalised value
    (an ISO 8601 duration for ``Duration`` when known)."""

    type: str
    text: str
    start: int
    end: int
    negated: bool = False
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class SlotConfig:
    """Settings of :class:`SlotFiller`.

    Attributes:
        use_nlp: Use :mod:`insightray.nlp` (NER term lists and ConText) when importable.
        use_model: Also run the learned NER tagger (slow on CPU).
        use_context: Use ConText for negation and durations (else the NegEx-style rule).
        topics: Extra disease / topic names (e.g. the knowledge index's focus names).
    """

    use_nlp: bool = True
    use_model: bool = False
    use_context: bool = True
    topics: tuple[str, ...] = field(default=(), repr=False)


class SlotFiller:
    """Extracts slots from a message (components load on first use)."""

    def __init__(self, config: SlotConfig | None = None) -> None:
        self.config = config or SlotConfig()
        self._tagger: Any = None
        self._context: Any = None
        self._fallback: Any = None
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.config.use_nlp:
            try:
                self._tagger = _nlp_tagger(self.config)
                if self.config.use_context:
                    from insightray.nlp.context import ContextAnalyzer

                    self._context = ContextAnalyzer()
                return
            except Exception as error:  # an unfinished or broken nlp layer must not stop chat
                warnings.warn(
                    f"insightray.nlp unavailable ({type(error).__name__}: {error}); slot "
                    "filling uses the assistant's small gazetteer",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._tagger = self._context = None
        self._fallback = _FallbackTagger(self.config.topics)

    def extract(self, text: str) -> list[Slot]:
        """Slots in ``text``, ordered by position."""
        self._load()
        entities: list[tuple[str, int, int, str]] = []
        if self._tagger is not None:
            entities = [(e.type, e.start, e.end, e.text) for e in self._tagger.tag(text)]
        else:
            entities = self._fallback.tag(text)
        entities = [e for e in entities if e[0] in ENTITY_SLOTS]
        slots: list[Slot] = []
        durations: list[Slot] = []
        if self._context is not None:
            result = self._context.analyze(text, entities)
            for entity in result.entities:
                slots.append(Slot(ENTITY_SLOTS[entity.type], entity.text, entity.start,
                                  entity.end, entity.negated))  # fmt: skip
            durations = [
                Slot("Duration", t.text, t.start, t.end, False, t.value)
                for t in result.temporal
                if t.kind in ("duration", "since", "ago", "relative")
            ]
        else:
            for kind, start, end, found in entities:
                slots.append(Slot(ENTITY_SLOTS[kind], found, start, end, _negated(text, start)))
        if not durations:
            durations = [
                Slot("Duration", m.group(), m.start(), m.end()) for m in DURATION.finditer(text)
            ]
        taken = [(s.start, s.end) for s in slots]
        slots += [d for d in durations if not _overlaps(d.start, d.end, taken)]
        for match in SEVERITY.finditer(text):
            if not _overlaps(match.start(), match.end(), taken):
                slots.append(Slot("Severity", match.group(), match.start(), match.end()))
        return sorted(slots, key=lambda s: (s.start, s.end))


def slots_by_type(slots: Iterable[Slot]) -> dict[str, list[dict[str, Any]]]:
    """``{"Disease": [...], "Symptom": [...], ...}`` with every slot type present.

    Example:
        >>> slots_by_type([Slot("Symptom", "fever", 3, 8, True)])["Symptom"][0]["negated"]
        True
    """
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in SLOT_TYPES}
    for slot in slots:
        grouped.setdefault(slot.type, []).append(
            {"text": slot.text, "negated": slot.negated, "value": slot.value,
             "start": slot.start, "end": slot.end}
        )  # fmt: skip
    return grouped


def _nlp_tagger(config: SlotConfig) -> Any:
    from insightray.nlp.gazetteer import Gazetteer, load_terms
    from insightray.nlp.ner import NerTagger, NerTaggerConfig

    labels = ("DISEASE", "SYMPTOM", "MEDICATION", "DOSAGE", "ANATOMY")
    tagger = (
        NerTagger.from_pretrained(config=NerTaggerConfig(labels=labels))
        if config.use_model
        else NerTagger(None, NerTaggerConfig(labels=labels, use_model=False))
    )
    if config.topics:
        terms = load_terms(["DISEASE", "SYMPTOM", "MEDICATION", "ANATOMY"])
        other = {t.lower() for kind in ("SYMPTOM", "MEDICATION", "ANATOMY") for t in terms[kind]}
        topics = [t for t in _usable_topics(config.topics) if t not in other]
        tagger.gazetteer = Gazetteer({**terms, "DISEASE": (*terms["DISEASE"], *topics)})
    return tagger


def _usable_topics(topics: Sequence[str]) -> list[str]:
    """Topic names worth matching as diseases: lower case, 4 letters or more, at most six
    words, and not a single common English word (MedQuAD has topics such as "Child",
    "Blood" or "Surgery")."""
    common = known_words()
    return sorted(
        {
            t.lower()
            for t in topics
            if len(t) >= 4 and len(t.split()) <= 6 and (" " in t or t.lower() not in common)
        }
    )


class _FallbackTagger:
    """Longest-first, word-exact matching of :data:`FALLBACK_TERMS` (plus topics)."""

    def __init__(self, topics: Sequence[str]) -> None:
        self.terms: dict[str, str] = {}
        for kind, names in FALLBACK_TERMS.items():
            self.terms.update({name: kind for name in names})
        for topic in _usable_topics(topics):
            self.terms.setdefault(topic, "DISEASE")  # a symptom or drug name stays one
        self.longest = max(len(t.split()) for t in self.terms)

    def tag(self, text: str) -> list[tuple[str, int, int, str]]:
        words = [(m.group().lower(), m.start(), m.end()) for m in re.finditer(r"[\w'-]+", text)]
        found: list[tuple[str, int, int, str]] = []
        index = 0
        while index < len(words):
            for size in range(min(self.longest, len(words) - index), 0, -1):
                phrase = " ".join(w for w, _, _ in words[index : index + size])
                kind = self.terms.get(phrase)
                if kind:
                    start, end = words[index][1], words[index + size - 1][2]
                    found.append((kind, start, end, text[start:end]))
                    index += size
                    break
            else:
                index += 1
        return found


def _negated(text: str, start: int, window: int = 6) -> bool:
    """NegEx-style: a negation cue within ``window`` words before ``start``, same clause."""
    clause_start = 0
    for found in _CLAUSE.finditer(text, 0, start):
        clause_start = found.end()
    before = text[clause_start:start].split()[-window:]
    return bool(_NEGATION.search(" ".join(before)))


def _overlaps(start: int, end: int, taken: Sequence[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in taken)

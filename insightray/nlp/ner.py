"""Medical named entities in free text: a learned DISEASE tagger plus a rule layer.

:class:`NerTagger` splits text into words with character offsets
(:func:`~insightray.models.text.split_words`) and sentences, runs a trained BiLSTM-CRF (by
default the bundled ``ner-ncbi-bilstm-crf``, trained on NCBI-disease) and the
:class:`~insightray.nlp.gazetteer.Gazetteer` (SYMPTOM, MEDICATION, DOSAGE, ANATOMY,
PROCEDURE, and DISEASE terms for extra recall), then keeps the longest of overlapping
entities. On a tie, a curated term of a type the model does not predict wins (the NCBI model
calls "chest pain" a disease; the SYMPTOM list knows better), then the model, then the rule
layer's DISEASE terms. Model entity types are upper-cased (``Disease`` -> ``DISEASE``).

Example:
    >>> tagger = NerTagger.from_pretrained()  # doctest: +SKIP
    >>> entities = tagger.tag("Metformin 500 mg for type 2 diabetes.")  # doctest: +SKIP
    >>> [(e.type, e.text) for e in entities]  # doctest: +SKIP
    [('MEDICATION', 'Metformin'), ('DOSAGE', '500 mg'), ('DISEASE', 'type 2 diabetes')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightray.engine.ner import LoadedNer, load_ner_model, predict_tags
from insightray.engine.predictor import require_torch_cpu
from insightray.errors import ConfigError
from insightray.models.card import ModelCard
from insightray.models.catalog import default_model, resolve_card
from insightray.models.text import split_words
from insightray.models.text.ner_encoding import bio_spans
from insightray.nlp.gazetteer import RULE_TYPES, Entity, Gazetteer

__all__ = [
    "DEFAULT_LABELS",
    "Entity",
    "NerTagger",
    "NerTaggerConfig",
    "TaggedText",
    "open_ner_tagger",
    "resolve_model",
    "split_sentences",
]

DEFAULT_LABELS = ("DISEASE", "SYMPTOM", "MEDICATION", "DOSAGE", "ANATOMY", "PROCEDURE")
_SENTENCE_END = frozenset(".!?")


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """The card path of a bundled model name, a model folder or a card file (default model).

    Raises:
        InputNotFoundError: Neither a bundled name nor an existing card.

    Example:
        >>> resolve_model().parent.name
        'ner-ncbi-bilstm-crf'
    """
    return resolve_card(name_or_path, default=default_model("ner"))


def open_ner_tagger(
    card: ModelCard, card_path: Path, *, backend: str = "auto", device: str = "cpu"
) -> NerTagger:
    """The ``ner`` task's predictor factory: learned model plus gazetteer, torch on the CPU."""
    require_torch_cpu("NER", backend, device)
    return NerTagger.from_pretrained(card_path)


def split_sentences(words: Sequence[tuple[str, int, int]]) -> list[list[int]]:
    """Group word indices into sentences: a break after ``.``, ``!`` or ``?`` followed by a
    space and a word that starts with a capital letter or a digit.

    Example:
        >>> split_sentences(split_words("Fever. No cough. Temp 38.5"))
        [[0, 1], [2, 3, 4], [5, 6, 7, 8]]
        >>> len(split_sentences(split_words("Fever 38.5 today.")))
        1
    """
    sentences: list[list[int]] = [[]]
    for index, (word, _, _) in enumerate(words):
        sentences[-1].append(index)
        if word not in _SENTENCE_END or index + 1 == len(words):
            continue
        following, start, _ = words[index + 1]
        if start > words[index][2] and (following[0].isupper() or following[0].isdigit()):
            sentences.append([])
    return [sentence for sentence in sentences if sentence]


@dataclass(frozen=True)
class NerTaggerConfig:
    """What :class:`NerTagger` returns.

    Attributes:
        labels: Entity types to keep; any of :data:`DEFAULT_LABELS` (and the model's types).
        use_model: Run the learned tagger; ``False`` uses the rule layer alone.
        rule_diseases: Add DISEASE terms from the gazetteer for extra recall.
        batch_size: Sentences per model call.
    """

    labels: tuple[str, ...] = DEFAULT_LABELS
    use_model: bool = True
    rule_diseases: bool = True
    batch_size: int = 64


@dataclass(frozen=True)
class TaggedText:
    """The entities found in one text (the ``ner`` task's result).

    Example:
        >>> TaggedText((Entity("MEDICATION", 0, 7, "Aspirin", "rules"),)).to_dict()["entities"][0]
        {'type': 'MEDICATION', 'start': 0, 'end': 7, 'text': 'Aspirin', 'source': 'rules'}
    """

    entities: tuple[Entity, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"entities": [entity.to_dict() for entity in self.entities]}


class NerTagger:
    """Learned + rule-based medical entity tagger.

    Args:
        model: A loaded BiLSTM-CRF (see :func:`~insightray.engine.ner.load_ner_model`), or
            ``None`` for rules only.
        config: Label set and options.
    """

    def __init__(self, model: LoadedNer | None, config: NerTaggerConfig | None = None) -> None:
        self.config = config or NerTaggerConfig()
        self.model = model if self.config.use_model else None
        wanted = set(self.config.labels)
        if not self.config.rule_diseases:
            wanted.discard("DISEASE")
        rule_types = [name for name in RULE_TYPES if name in wanted]
        self.gazetteer = Gazetteer.default(rule_types) if rule_types else None
        model_types: set[str] = set()
        if self.model is not None:
            model_types = {label[2:].upper() for label in self.model.card.labels if label != "O"}
        self.model_types = frozenset(model_types)
        unknown = sorted(wanted - set(RULE_TYPES) - model_types)
        if unknown:
            raise ConfigError(
                ", ".join(unknown), "no model or rule finds this entity type", "drop it"
            )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path | None = None, config: NerTaggerConfig | None = None
    ) -> NerTagger:
        """Load a bundled model by name (``None``: the default), or a card or model folder."""
        config = config or NerTaggerConfig()
        model = load_ner_model(resolve_model(name_or_path)) if config.use_model else None
        return cls(model, config)

    @property
    def card(self) -> ModelCard:
        """The learned model's card.

        Raises:
            ConfigError: The tagger runs on rules only.
        """
        if self.model is None:
            raise ConfigError("NER tagger", "it runs on rules only and has no model card", "")
        return self.model.card

    def predict(self, inputs: Sequence[str]) -> list[TaggedText]:
        """The entities of each text (the :class:`~insightray.engine.Predictor` call)."""
        return [TaggedText(tuple(entities)) for entities in self.tag_many(inputs)]

    def warm_up(self) -> None:
        """Tag one short sentence."""
        self.tag("No fever today.")

    def tag(self, text: str) -> list[Entity]:
        """Entities in ``text``, ordered by start offset, none overlapping.

        Example:
            >>> NerTagger(None).tag("Aspirin 81 mg daily; no chest pain.")[0].type
            'MEDICATION'
        """
        return self.tag_many([text])[0]

    def tag_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        """:meth:`tag` for several texts, batching the model across them."""
        model_entities = self._model_entities(texts)
        results = []
        for text, learned in zip(texts, model_entities, strict=True):
            rules = self.gazetteer.find(text) if self.gazetteer else []
            candidates = [e for e in (*learned, *rules) if e.type in self.config.labels]
            results.append(_resolve_overlaps(candidates, self.model_types))
        return results

    def _model_entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        if self.model is None:
            return [[] for _ in texts]
        owners: list[tuple[int, list[tuple[str, int, int]]]] = []
        for number, text in enumerate(texts):
            words = split_words(text)
            owners += [(number, [words[i] for i in group]) for group in split_sentences(words)]
        tags = predict_tags(
            self.model, [[w for w, _, _ in words] for _, words in owners], self.config.batch_size
        )
        found: list[list[Entity]] = [[] for _ in texts]
        for (number, words), sentence_tags in zip(owners, tags, strict=True):
            for kind, first, end in bio_spans(sentence_tags):
                start, stop = words[first][1], words[end - 1][2]
                text = texts[number]
                found[number].append(Entity(kind.upper(), start, stop, text[start:stop], "model"))
        return found


def _resolve_overlaps(candidates: list[Entity], model_types: frozenset[str]) -> list[Entity]:
    """Keep the longest of overlapping entities; ties go to rule terms of types the model does
    not predict, then to the model, then to the first."""

    def tie_break(entity: Entity) -> int:
        if entity.source == "model":
            return 1
        return 2 if entity.type in model_types else 0

    ranked = sorted(candidates, key=lambda e: (-(e.end - e.start), tie_break(e), e.start))
    kept: list[Entity] = []
    for entity in ranked:
        if all(entity.end <= other.start or other.end <= entity.start for other in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: e.start)

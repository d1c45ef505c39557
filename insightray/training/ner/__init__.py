"""Named-entity tagger training: CoNLL data, the BiLSTM-CRF trainer, a BERT comparison.

Run-time tagging (loading a trained folder, predicting tags) is :mod:`insightray.engine.ner`
for the BiLSTM-CRF and :mod:`insightray.models.text.token_classifier` for the BERT one; the
vocabulary and encoder both sides of the BiLSTM-CRF share are
:mod:`insightray.models.text.ner_encoding`.

Example:
    >>> from insightray.training.ner import NerTrainConfig
    >>> NerTrainConfig(epochs=3).epochs
    3
"""

from __future__ import annotations

from insightray.training.ner.conll import bio_errors, read_conll, repair_bio
from insightray.training.ner.token_classifier import (
    BertNerConfig,
    evaluate_token_classifier,
    train_token_classifier,
)
from insightray.training.ner.trainer import (
    NerTrainConfig,
    NerTrainResult,
    evaluate_ner,
    save_ner_model,
    train_ner,
)

__all__ = [
    "BertNerConfig",
    "NerTrainConfig",
    "NerTrainResult",
    "bio_errors",
    "evaluate_ner",
    "evaluate_token_classifier",
    "read_conll",
    "repair_bio",
    "save_ner_model",
    "train_ner",
    "train_token_classifier",
]

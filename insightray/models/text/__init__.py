"""Text models.

Importing this package registers the BiLSTM-CRF named-entity tagger (``bilstm_crf``, task
``ner``); ``insightray.models.text.bert_classifier`` registers its builder when imported.

Example:
    >>> from insightray.models import list_models
    >>> import insightray.models.text
    >>> list_models(task="ner")
    ['bilstm_crf']
"""

from __future__ import annotations

from insightray.models.text.bilstm_crf import (
    FORBIDDEN,
    SHAPE_FEATURES,
    BiLstmCrf,
    BiLstmCrfConfig,
    ConstrainedCRF,
    NerInputs,
    TermIndex,
    bio_constraints,
    load_minilm_piece_table,
    shape_features,
    split_words,
)

__all__ = [
    "FORBIDDEN",
    "SHAPE_FEATURES",
    "BiLstmCrf",
    "BiLstmCrfConfig",
    "ConstrainedCRF",
    "NerInputs",
    "TermIndex",
    "bio_constraints",
    "load_minilm_piece_table",
    "shape_features",
    "split_words",
]

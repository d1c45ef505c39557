"""BERT text-classifier training: CSV data and splits, domain adaptation, the schedule, the loop.

Run-time classification (loading a trained folder, predicting) is
:mod:`insightray.models.text.bert_classifier`, wrapped by
:class:`~insightray.nlp.classifier.DiseaseClassifier`.

Example:
    >>> from insightray.training.textcls import TextClsConfig
    >>> TextClsConfig().storage
    'delta'
"""

from __future__ import annotations

from insightray.training.textcls.adapt import MlmConfig
from insightray.training.textcls.data import TextDataset, load_corpus, load_text_csv
from insightray.training.textcls.evaluate import evaluate_textcls, split_for_card
from insightray.training.textcls.schedule import Phase, default_phases
from insightray.training.textcls.trainer import EpochLog, TextClsConfig, TrainResult, train_textcls

__all__ = [
    "EpochLog",
    "MlmConfig",
    "Phase",
    "TextClsConfig",
    "TextDataset",
    "TrainResult",
    "default_phases",
    "evaluate_textcls",
    "load_corpus",
    "load_text_csv",
    "split_for_card",
    "train_textcls",
]

"""Intent-head training for the assistant: LiveQA + MedQuAD examples, the fit, held-out scores.

The trained head is an :class:`~insightray.assistant.intents.IntentClassifier`; run
``python -m insightray.training.intents --out FOLDER`` (or ``insightray train intent``).

Example:
    >>> from insightray.training.intents import IntentTrainConfig
    >>> IntentTrainConfig().seed
    0
"""

from __future__ import annotations

from insightray.training.intents.trainer import (
    IntentExample,
    IntentTrainConfig,
    evaluate_intents,
    intent_examples,
    main,
    train_intent_classifier,
)

__all__ = [
    "IntentExample",
    "IntentTrainConfig",
    "evaluate_intents",
    "intent_examples",
    "main",
    "train_intent_classifier",
]

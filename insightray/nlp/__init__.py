"""Clinical language: entities, negation and classification of clinical text.

The public names below are imported lazily, on first use, so that ``import insightray.nlp``
stays cheap (spaCy, medspaCy and transformers load only when a component is built).

Example:
    >>> from insightray.nlp import ClinicalPipeline
    >>> result = ClinicalPipeline().analyze("No chest pain; cough for 3 days.")  # doctest: +SKIP
    >>> print(result.to_json(indent=2))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClinicalPipeline": "insightray.nlp.pipeline",
    "ClinicalResult": "insightray.nlp.pipeline",
    "PipelineConfig": "insightray.nlp.pipeline",
    "ContextAnalyzer": "insightray.nlp.context",
    "ContextConfig": "insightray.nlp.context",
    "ContextualEntity": "insightray.nlp.context",
    "TemporalExpression": "insightray.nlp.temporal",
    "TemporalTagger": "insightray.nlp.temporal",
    "DiseaseClassifier": "insightray.nlp.classifier",
    "NerTagger": "insightray.nlp.ner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'insightray.nlp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""The clinical text pipeline: text in, structured and JSON-ready result out.

:class:`ClinicalPipeline` finds entities (any object with ``tag(text)`` returning
``(type, start, end, text)`` items; by default :class:`insightray.nlp.ner.NerTagger`), gives
each its context (negated, uncertain, historical, hypothetical, experiencer, temporal; see
:mod:`insightray.nlp.context`), splits sentences and ranks diseases with the bundled
classifier. When the NER tagger cannot be loaded it falls back to a medspaCy TargetMatcher
over a short term list and says so in ``warnings``.

Radiology findings (pneumothorax, pleural effusion, consolidation, nodule, cardiomegaly, ...)
are added as ``FINDING`` entities wherever the extractor found nothing, from the report
labeller's mention rules (:mod:`insightray.nlp.reports.rules`). Text that reads as a radiology
report (``report_score`` at least :data:`REPORT_THRESHOLD`) gets no disease ranking: the
classifier was trained on patient-written symptom descriptions, so it abstains and says why
(``abstained``); ``insightray nlp report`` gives the report's observations.

Example:
    >>> pipeline = ClinicalPipeline()  # doctest: +SKIP
    >>> result = pipeline.analyze("Denies chest pain. Cough for 3 days, possible pneumonia.")
    ...  # doctest: +SKIP
    >>> [(e.text, e.negated, e.uncertain) for e in result.entities]  # doctest: +SKIP
    [('chest pain', True, False), ('Cough', False, False), ('pneumonia', False, True)]
    >>> print(result.to_json())  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from insightray.errors import InputError, InsightRayError
from insightray.nlp.attribution import METHODS, TextExplanation, explain_text
from insightray.nlp.classifier import DiseaseClassifier, DiseasePrediction
from insightray.nlp.context import (
    ContextAnalyzer,
    ContextConfig,
    ContextualEntity,
    Entity,
    Sentence,
    as_entity,
)
from insightray.nlp.reports.rules import MentionRules
from insightray.nlp.temporal import TemporalExpression

__all__ = [
    "FALLBACK_TERMS",
    "FINDING",
    "REPORT_THRESHOLD",
    "ClinicalPipeline",
    "ClinicalResult",
    "DiseasePrediction",
    "EntityExtractor",
    "PipelineConfig",
    "TermMatcher",
    "default_extractor",
]

FALLBACK_TERMS = Path(__file__).resolve().parent / "resources" / "fallback_terms.json"
#: Entity type of radiology findings.
FINDING = "FINDING"
#: From this report score on, the text is taken for a radiology report.
REPORT_THRESHOLD = 0.75
_NOT_FINDINGS = frozenset({"Support Devices", "No Finding"})


@runtime_checkable
class EntityExtractor(Protocol):
    """Anything that finds entities: ``tag(text)`` returns ``(type, start, end, text)`` tuples
    or objects with those attributes."""

    def tag(self, text: str) -> Sequence[Any]:
        """Entities of ``text`` with character offsets into it."""
        ...


class TermMatcher:
    """Fallback extractor: a medspaCy TargetMatcher over a JSON list of terms per type.

    Example:
        >>> TermMatcher().tag("No fever.")  # doctest: +SKIP
        [('PROBLEM', 3, 8, 'fever')]
    """

    def __init__(self, terms_path: Path = FALLBACK_TERMS) -> None:
        import medspacy
        from medspacy.ner import TargetRule

        data = json.loads(terms_path.read_text(encoding="utf-8"))
        self._nlp = medspacy.load(medspacy_enable=["medspacy_target_matcher"])
        matcher = self._nlp.get_pipe("medspacy_target_matcher")
        matcher.add(
            [
                TargetRule(term, label)
                for label, terms in data.items()
                if isinstance(terms, list)
                for term in terms
            ]
        )

    def tag(self, text: str) -> list[tuple[str, int, int, str]]:
        """Matched terms as ``(type, start, end, text)``."""
        return [(e.label_, e.start_char, e.end_char, e.text) for e in self._nlp(text).ents]


def default_extractor() -> tuple[EntityExtractor, str, list[str]]:
    """The NER tagger when it can be loaded, else :class:`TermMatcher`.

    Returns:
        The extractor, its name and any warnings (why the fallback is in use).
    """
    try:
        from insightray.nlp.ner import NerTagger
    except ImportError as error:
        reason = f"insightray.nlp.ner is not available ({error.name or error})"
    else:
        try:
            return NerTagger.from_pretrained(), "NerTagger", []
        except (InsightRayError, OSError, RuntimeError) as error:
            reason = f"the NER tagger could not be loaded ({error})"
    warning = f"{reason}: entities come from a fallback list of common problems only"
    return TermMatcher(), "TermMatcher (fallback)", [warning]


@dataclass(frozen=True)
class ClinicalResult:
    """Everything the pipeline found in one text.

    Attributes:
        text: The input text.
        sentences: Sentence spans.
        entities: Entities with type, span, text and context attributes.
        temporal: Every temporal expression in the text.
        diseases: Ranked disease predictions for the whole text.
        extractor: Which entity extractor ran.
        classifier: Which classifier ran (``None``: none).
        warnings: Anything the user must know (fallbacks, missing models).
        report_score: How much the text reads as a radiology report, in ``[0, 1]``.
        abstained: Why the classifier gave no ranking (``None``: it did not abstain).
        explanation: The words behind the best disease (integrated gradients), when asked.
    """

    text: str
    sentences: tuple[Sentence, ...]
    entities: tuple[ContextualEntity, ...]
    temporal: tuple[TemporalExpression, ...]
    diseases: tuple[DiseasePrediction, ...]
    extractor: str
    classifier: str | None
    warnings: tuple[str, ...] = ()
    report_score: float = 0.0
    abstained: str | None = None
    explanation: TextExplanation | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        """The result as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass(frozen=True)
class PipelineConfig:
    """Pipeline settings.

    Attributes:
        classify: Rank diseases with the classifier.
        classifier: Bundled classifier name or model folder.
        top_k: How many diseases to report.
        context: ConText settings.
    """

    classify: bool = True
    classifier: str | None = None
    top_k: int = 5
    context: ContextConfig = field(default_factory=ContextConfig)


class ClinicalPipeline:
    """Entities with context, sentences, time expressions and disease ranking for a text.

    Args:
        extractor: Entity extractor; default :func:`default_extractor`.
        classifier: Disease classifier; default the bundled one (when ``config.classify``).
        context: Context analyzer; default built from ``config.context``.
        config: Settings.
    """

    def __init__(
        self,
        extractor: EntityExtractor | None = None,
        classifier: DiseaseClassifier | None = None,
        context: ContextAnalyzer | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self._warnings: list[str] = []
        if extractor is None:
            extractor, self._extractor_name, notes = default_extractor()
            self._warnings += notes
        else:
            self._extractor_name = type(extractor).__name__
        self.extractor = extractor
        self.context = context or ContextAnalyzer(self.config.context)
        self.findings = MentionRules()
        self.classifier = classifier
        if classifier is None and self.config.classify:
            try:
                self.classifier = DiseaseClassifier.load(self.config.classifier)
            except InsightRayError as error:
                self._warnings.append(f"no disease predictions: {error}")

    def analyze(
        self,
        text: str,
        reference_date: date | datetime | str | None = None,
        *,
        explain: bool = False,
        explain_method: str = METHODS[0],
    ) -> ClinicalResult:
        """Run the whole pipeline on ``text``.

        Args:
            text: Clinical or patient text.
            reference_date: The note's date: relative times ("3 days ago") become dates.
            explain: Also weigh the words of the text behind the best disease.
            explain_method: How: one of :data:`~insightray.nlp.attribution.METHODS`
                (integrated gradients or attention rollout).

        Raises:
            InputError: The text is empty.
        """
        if not text.strip():
            raise InputError("text", "the text is empty", "give some text to analyze")
        found = self.context.analyze(text, self._entities(text), reference_date)
        diseases: tuple[DiseasePrediction, ...] = ()
        report_score = self.findings.report_score(text)
        abstained = None
        explanation = None
        if self.classifier is not None and report_score >= REPORT_THRESHOLD:
            abstained = (
                f"the text reads as a radiology report (score {report_score:.2f}); the disease "
                "classifier knows patient-written symptom descriptions only: use "
                "'insightray nlp report' for the report's findings"
            )
        elif self.classifier is not None:
            ranked = self.classifier.rank(text, top_k=self.config.top_k)
            diseases = tuple(DiseasePrediction(label, score) for label, score in ranked)
            if explain:
                explanation = explain_text(
                    self.classifier.loaded, text, diseases[0].label, method=explain_method
                )
        return ClinicalResult(
            text=text,
            sentences=found.sentences,
            entities=found.entities,
            temporal=found.temporal,
            diseases=diseases,
            extractor=self._extractor_name,
            classifier=None if self.classifier is None else self.classifier.name,
            warnings=tuple(self._warnings),
            report_score=round(report_score, 3),
            abstained=abstained,
            explanation=explanation,
        )

    def _entities(self, text: str) -> list[Any]:
        """The extractor's entities, plus radiology findings where it found nothing."""
        entities = [as_entity(item) for item in self.extractor.tag(text)]
        taken = [(e.start, e.end) for e in entities]
        for mention in self.findings.find(text):
            overlaps = any(a < mention.end and mention.start < b for a, b in taken)
            if mention.absent or mention.label in _NOT_FINDINGS or overlaps:
                continue
            entities.append(Entity(FINDING, mention.start, mention.end, mention.text))
            taken.append((mention.start, mention.end))
        return sorted(entities, key=lambda e: (e.start, e.end))

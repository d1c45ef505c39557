"""Word attributions of the disease classifier: well-formed, complete, and faithful."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.errors import InputError
from insightray.nlp.attribution import deletion_curve, explain_text, insertion_curve
from insightray.nlp.classifier import DiseaseClassifier
from insightray.nlp.pipeline import ClinicalPipeline, PipelineConfig, TermMatcher

TEXT = "My skin is red and itchy, with dry scaly silvery patches on my elbows and knees"


@pytest.fixture(scope="module")
def classifier() -> DiseaseClassifier:
    return DiseaseClassifier.load()


def test_words_cover_the_text_and_the_integral_is_complete(classifier: DiseaseClassifier) -> None:
    explanation = explain_text(classifier.loaded, TEXT, steps=16)
    assert explanation.label == classifier.decide(TEXT)[0]
    assert [word.text for word in explanation.words] == TEXT.split()
    assert all(TEXT[w.start : w.end] == w.text for w in explanation.words)
    assert max(abs(word.weight) for word in explanation.words) == pytest.approx(1.0)
    # Completeness: attributions sum to the score's difference from the all-padding baseline.
    assert explanation.convergence_delta < 0.05


def test_deleting_the_top_words_hurts_more_than_deleting_the_bottom_ones(
    classifier: DiseaseClassifier,
) -> None:
    explanation = explain_text(classifier.loaded, TEXT, steps=16)
    words = [word.text for word in explanation.words]
    ranked = sorted(range(len(words)), key=lambda i: -explanation.words[i].weight)
    top_first = deletion_curve(classifier.loaded, words, ranked, explanation.label, points=6)
    bottom_first = deletion_curve(classifier.loaded, words, ranked[::-1], explanation.label, 6)
    assert top_first[0] == pytest.approx(explanation.score, abs=1e-3)
    assert np.trapz(top_first) < np.trapz(bottom_first)
    inserted = insertion_curve(classifier.loaded, words, ranked, explanation.label, points=6)
    assert inserted[-1] == pytest.approx(explanation.score, abs=1e-3)


def test_bad_requests_are_input_errors(classifier: DiseaseClassifier) -> None:
    with pytest.raises(InputError, match="not a label"):
        explain_text(classifier.loaded, TEXT, label="Broken heart")
    with pytest.raises(InputError, match="no words"):
        explain_text(classifier.loaded, "   ")
    with pytest.raises(InputError, match="permutation"):
        deletion_curve(classifier.loaded, ["a", "b"], [0, 0], "Psoriasis")


def test_the_pipeline_explains_its_best_disease_on_request(classifier: DiseaseClassifier) -> None:
    pipeline = ClinicalPipeline(TermMatcher(), classifier, config=PipelineConfig())
    assert pipeline.analyze(TEXT).explanation is None
    result = pipeline.analyze(TEXT, explain=True).to_dict()
    assert result["explanation"]["label"] == result["diseases"][0]["label"]
    assert result["explanation"]["method"] == "integrated-gradients"

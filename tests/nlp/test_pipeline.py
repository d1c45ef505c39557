"""The clinical pipeline, the disease classifier wrapper and ``insightray nlp analyze``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insightray.errors import InputError, InputNotFoundError
from insightray.nlp.classifier import DiseaseClassifier, bundled_classifiers
from insightray.nlp.context import ContextAnalyzer
from insightray.nlp.pipeline import (
    ClinicalPipeline,
    EntityExtractor,
    PipelineConfig,
    TermMatcher,
    default_extractor,
)
from insightray.training.textcls.trainer import Phase, TextClsConfig, train_textcls
from tests.nlp.bert_helpers import write_tiny_bert, write_toy_csv

NOTE = (
    "Patient denies chest pain. Cough for 3 days, possible pneumonia. "
    "Mother has diabetes. No fever but has headache."
)


@pytest.fixture(scope="module")
def context() -> ContextAnalyzer:
    return ContextAnalyzer()


@pytest.fixture(scope="module")
def matcher() -> TermMatcher:
    return TermMatcher()


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> DiseaseClassifier:
    root = tmp_path_factory.mktemp("cls")
    config = TextClsConfig(
        encoder=str(write_tiny_bert(root / "bert")),
        phases=(Phase("head", 3, 0.0, 1e-2, 0),),
        batch_size=8,
    )
    train_textcls(write_toy_csv(root / "toy.csv"), root / "model", config, log=lambda _: None)
    return DiseaseClassifier.load(root / "model")


def test_pipeline_result_is_structured_and_json_ready(
    context: ContextAnalyzer, matcher: TermMatcher
) -> None:
    pipeline = ClinicalPipeline(matcher, context=context, config=PipelineConfig(classify=False))
    result = pipeline.analyze(NOTE, reference_date="2024-05-10")
    found = {e.text: e for e in result.entities}
    assert set(found) == {"chest pain", "Cough", "pneumonia", "diabetes", "fever", "headache"}
    assert found["chest pain"].negated and found["fever"].negated
    assert not found["headache"].negated and not found["Cough"].negated
    assert found["pneumonia"].uncertain and found["diabetes"].experiencer == "family"
    cough_time = found["Cough"].temporal[0]
    assert (cough_time.value, cough_time.date) == ("P3D", "2024-05-07")
    assert NOTE[found["Cough"].start : found["Cough"].end] == "Cough"
    assert len(result.sentences) == 4 and result.diseases == () and result.classifier is None
    data = json.loads(result.to_json())
    assert data["entities"][0]["type"] == "PROBLEM" and "negated" in data["entities"][0]
    assert result.extractor == "TermMatcher" and result.warnings == ()


def test_any_extractor_with_tag_works(context: ContextAnalyzer) -> None:
    class Tagger:
        def tag(self, text: str) -> list[tuple[str, int, int, str]]:
            start = text.index("rash")
            return [("SYMPTOM", start, start + 4, "rash")]

    assert isinstance(Tagger(), EntityExtractor)
    pipeline = ClinicalPipeline(Tagger(), context=context, config=PipelineConfig(classify=False))
    (entity,) = pipeline.analyze("No rash today.").entities
    assert entity.type == "SYMPTOM" and entity.negated and entity.temporal[0].kind == "relative"
    with pytest.raises(InputError):
        pipeline.analyze("   ")


def test_falls_back_to_term_matcher_without_ner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "insightray.nlp.ner", None)  # import now fails
    extractor, name, warnings = default_extractor()
    assert isinstance(extractor, TermMatcher) and "fallback" in name
    assert len(warnings) == 1 and "not available" in warnings[0]


def test_falls_back_when_the_ner_model_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    ner = pytest.importorskip("insightray.nlp.ner")

    def broken(*_: object, **__: object) -> None:
        raise InputNotFoundError("ner-model", "the bundled model is missing", "reinstall")

    monkeypatch.setattr(ner.NerTagger, "from_pretrained", classmethod(broken))
    extractor, _, warnings = default_extractor()
    assert isinstance(extractor, TermMatcher) and "could not be loaded" in warnings[0]


def test_pipeline_ranks_diseases(
    context: ContextAnalyzer, matcher: TermMatcher, tiny_classifier: DiseaseClassifier
) -> None:
    pipeline = ClinicalPipeline(
        matcher, tiny_classifier, context, PipelineConfig(top_k=2, classify=True)
    )
    result = pipeline.analyze("My skin is red, itchy and scaly with a rash.")
    assert len(result.diseases) == 2 and result.classifier == "model"
    assert result.diseases[0].score >= result.diseases[1].score
    ranked = tiny_classifier.rank("itchy red skin rash", top_k=None)
    assert sorted(label for label, _ in ranked) == ["chest", "joint", "skin"]
    assert sum(score for _, score in ranked) == pytest.approx(1.0, abs=1e-3)
    assert len(tiny_classifier.decide("itchy red skin rash")) == 1


def test_missing_classifier_is_a_warning(context: ContextAnalyzer, matcher: TermMatcher) -> None:
    config = PipelineConfig(classifier="no-such-model")
    result = ClinicalPipeline(matcher, context=context, config=config).analyze("Fever.")
    assert result.diseases == () and "no disease predictions" in result.warnings[0]


def test_cli_nlp_analyze_json_and_file(tmp_path: Path) -> None:
    from insightray.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["nlp", "analyze", NOTE, "--json", "--no-classify"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout.strip().splitlines()[-1])
    assert {"sentences", "entities", "temporal", "diseases", "warnings"} <= set(record)
    negated = " ".join(e["text"] for e in record["entities"] if e["negated"]).lower()
    assert "chest pain" in negated and "fever" in negated  # whichever extractor found them
    note = tmp_path / "note.txt"
    note.write_text("History of asthma. Wheezing since yesterday.", encoding="utf-8")
    table = runner.invoke(app, ["nlp", "analyze", "--file", str(note), "--no-classify"])
    assert table.exit_code == 0 and "entities" in table.stdout
    both = runner.invoke(app, ["nlp", "analyze", "x", "--file", str(note)])
    assert both.exit_code != 0


@pytest.mark.skipif(
    "textcls-symptom2disease-minilm" not in bundled_classifiers(), reason="no bundled model"
)
def test_pipeline_with_the_bundled_classifier(
    context: ContextAnalyzer, matcher: TermMatcher
) -> None:
    pipeline = ClinicalPipeline(matcher, context=context)
    result = pipeline.analyze(
        "I have a high fever with chills and sweating every other day, and a headache."
    )
    assert result.classifier == "textcls-symptom2disease-minilm"
    assert "Malaria" in [d.label for d in result.diseases[:3]]


def test_radiology_findings_are_entities_and_the_classifier_abstains_on_reports(
    context: ContextAnalyzer, matcher: TermMatcher, tiny_classifier: DiseaseClassifier
) -> None:
    pipeline = ClinicalPipeline(matcher, tiny_classifier, context, PipelineConfig(classify=True))
    text = "Chest X-ray shows no evidence of pneumothorax but a small left pleural effusion."
    result = pipeline.analyze(text)
    found = {e.text: e for e in result.entities}  # the matcher's own "effusion" is kept
    assert found["pneumothorax"].type == "FINDING" and found["pneumothorax"].negated
    assert not found["effusion"].negated
    assert result.diseases == () and result.abstained and result.report_score >= 0.75
    symptoms = pipeline.analyze("My skin is red, itchy and scaly with a rash.")
    assert symptoms.diseases and symptoms.abstained is None

"""Regression tests for context (ConText + our rules) and temporal expressions.

Each case is a classic hard case of negation detection; the rule that fixes it is in
insightray/nlp/resources/context_rules.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import pytest

from insightray.errors import ConfigError
from insightray.nlp.context import ContextAnalyzer, ContextualEntity, as_entity
from insightray.nlp.temporal import TemporalTagger


@pytest.fixture(scope="module")
def analyzer() -> ContextAnalyzer:
    return ContextAnalyzer()


def run(
    analyzer: ContextAnalyzer, text: str, *terms: str, on: date | None = None
) -> dict[str, ContextualEntity]:
    """Tag the first occurrence of each term and return the results by term."""
    entities = []
    for term in terms:
        found = re.search(re.escape(term), text)
        assert found, term
        entities.append(("PROBLEM", found.start(), found.end(), term))
    result = analyzer.analyze(text, entities, on)
    return {entity.text: entity for entity in result.entities}


NEGATED = [
    ("The patient is negative for pneumonia.", "pneumonia"),
    ("Influenza swab was negative for influenza.", "influenza"),
    ("No further chest pain.", "chest pain"),
    ("Chest pain: none.", "Chest pain"),
    ("Patient denies chest pain.", "chest pain"),
    ("He has never had seizures.", "seizures"),
]


@pytest.mark.parametrize(("text", "term"), NEGATED)
def test_negated(analyzer: ContextAnalyzer, text: str, term: str) -> None:
    entity = run(analyzer, text, term)[term]
    assert entity.negated and not entity.uncertain
    assert entity.cues and entity.cues[0].category == "NEGATED_EXISTENCE"


def test_no_x_or_y_negates_both(analyzer: ContextAnalyzer) -> None:
    found = run(analyzer, "No fever or cough.", "fever", "cough")
    assert found["fever"].negated and found["cough"].negated


def test_rule_out_is_uncertain_not_negated(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "Chest X-ray to rule out pneumonia.", "pneumonia")["pneumonia"]
    assert entity.uncertain and not entity.negated


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Not only fever but also a cough.", "fever"),
        ("No change in the pleural effusion.", "pleural effusion"),
        ("No significant change in effusion.", "effusion"),
        ("Gram negative rods, sepsis suspected.", "rods"),
    ],
)
def test_pseudo_negations_do_not_negate(analyzer: ContextAnalyzer, text: str, term: str) -> None:
    assert not run(analyzer, text, term)[term].negated


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Possible pneumonia.", "pneumonia"),
        ("Malignancy cannot be excluded.", "Malignancy"),
        ("Pulmonary embolism cannot be ruled out.", "Pulmonary embolism"),
        ("Likely pneumonia.", "pneumonia"),
        ("Findings suspicious for tuberculosis.", "tuberculosis"),
    ],
)
def test_uncertain(analyzer: ContextAnalyzer, text: str, term: str) -> None:
    entity = run(analyzer, text, term)[term]
    assert entity.uncertain and not entity.negated


def test_history_of_is_historical(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "History of diabetes.", "diabetes")["diabetes"]
    assert entity.historical and entity.experiencer == "patient"


def test_hpi_heading_is_not_history(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "History of present illness: cough for 3 days.", "cough")["cough"]
    assert not entity.historical


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Mother has breast cancer.", "breast cancer"),
        ("Family history of diabetes.", "diabetes"),
        ("Diabetes runs in the family.", "Diabetes"),
    ],
)
def test_family_experiencer(analyzer: ContextAnalyzer, text: str, term: str) -> None:
    entity = run(analyzer, text, term)[term]
    assert entity.experiencer == "family"
    assert not entity.historical  # a relative's history is not the patient's


def test_relative_as_informant_is_not_the_experiencer(analyzer: ContextAnalyzer) -> None:
    assert run(analyzer, "Mother reports that he has fever.", "fever")["fever"].experiencer == (
        "patient"
    )


def test_other_experiencer(analyzer: ContextAnalyzer) -> None:
    assert run(analyzer, "His roommate has influenza.", "influenza")["influenza"].experiencer == (
        "other"
    )


def test_hypothetical(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "Return if fever develops.", "fever")["fever"]
    assert entity.hypothetical and not entity.negated


def test_termination_at_but(analyzer: ContextAnalyzer) -> None:
    found = run(analyzer, "No fever but has cough.", "fever", "cough")
    assert found["fever"].negated and not found["cough"].negated
    found = run(analyzer, "Possible pneumonia; no effusion.", "pneumonia", "effusion")
    assert found["pneumonia"].uncertain and not found["pneumonia"].negated
    assert found["effusion"].negated and not found["effusion"].uncertain


def test_temporal_three_days_ago(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "Fever 3 days ago.", "Fever", on=date(2024, 5, 10))["Fever"]
    assert [(t.text, t.value, t.date) for t in entity.temporal] == [
        ("3 days ago", "P3D", "2024-05-07")
    ]
    assert not entity.historical


def test_old_onset_makes_an_entity_historical(analyzer: ContextAnalyzer) -> None:
    entity = run(analyzer, "Myocardial infarction 2 years ago.", "Myocardial infarction")
    assert entity["Myocardial infarction"].historical


def test_temporal_attaches_within_its_clause(analyzer: ContextAnalyzer) -> None:
    found = run(analyzer, "No fever but cough for two weeks.", "fever", "cough")
    assert [t.value for t in found["cough"].temporal] == ["P2W"]
    assert found["fever"].temporal == ()


def test_every_entity_is_returned_even_overlapping(analyzer: ContextAnalyzer) -> None:
    text = "Denies chest pain."
    result = analyzer.analyze(
        text, [("SYMPTOM", 7, 17, "chest pain"), ("ANATOMY", 7, 12, "chest"), ("X", 0, 0, "")]
    )
    assert [e.type for e in result.entities] == ["SYMPTOM", "ANATOMY", "X"]
    assert result.entities[0].negated and result.entities[1].negated
    assert [s.text for s in result.sentences] == ["Denies chest pain."]


def test_as_entity_accepts_objects_and_mappings() -> None:
    @dataclass
    class Found:
        type: str
        start: int
        end: int
        text: str
        source: str

    assert as_entity(Found("DISEASE", 0, 5, "fever", "model")).type == "DISEASE"
    assert as_entity({"label": "SYMPTOM", "start": 1, "end": 2, "text": "x"}).type == "SYMPTOM"
    with pytest.raises(ConfigError):
        as_entity(object())


@pytest.mark.parametrize(
    ("text", "kind", "value", "when"),
    [
        ("fever 3 days ago", "ago", "P3D", "2024-05-07"),
        ("headache since 2019", "since", "2019", "2019"),
        ("cough for two weeks", "duration", "P2W", "2024-04-26"),
        ("vomiting since yesterday", "since", "P1D", "2024-05-09"),
        ("rash yesterday", "relative", "P1D", "2024-05-09"),
        ("pain for the past 4 hours", "duration", "PT4H", "2024-05-10"),
        ("a 2-day history of diarrhea", "duration", "P2D", "2024-05-08"),
        ("asthma since March 2020", "since", "2020-03", "2020-03"),
        ("stroke 2 years ago", "ago", "P2Y", "2022"),
        ("itching for a few weeks", "duration", None, None),
    ],
)
def test_temporal_normalisation(text: str, kind: str, value: str | None, when: str | None) -> None:
    (found,) = TemporalTagger().find(text, date(2024, 5, 10))
    assert (found.kind, found.value, found.date) == (kind, value, when)
    assert text[found.start : found.end] == found.text


def test_temporal_without_reference_date_keeps_durations() -> None:
    (found,) = TemporalTagger().find("fever 3 days ago")
    assert (found.value, found.date, found.days_back) == ("P3D", None, 3.0)

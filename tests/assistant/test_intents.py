"""Intent tables and the bundled intent head."""

from __future__ import annotations

import pytest

from insightray.assistant.embeddings import Embedder
from insightray.assistant.intents import (
    QTYPES,
    RAW_QTYPES,
    IntentClassifier,
    canonical_qtype,
    primary_of,
    secondary_of,
    smalltalk,
)


def test_every_raw_type_maps_into_the_hierarchy() -> None:
    assert set(RAW_QTYPES.values()) <= set(QTYPES)
    assert {secondary_of(q) for q in QTYPES} >= {
        "Symptom_Inquiry", "Diagnosis_Clarification", "Treatment_Options",
    }  # fmt: skip
    assert {primary_of(q) for q in QTYPES} == {"Question", "Information_Seeking"}
    assert canonical_qtype("Side Effects") == "side_effects"
    assert canonical_qtype("no such type") is None


def test_smalltalk_only_when_nothing_else_is_asked() -> None:
    assert smalltalk("Good morning") == "Greeting"
    assert smalltalk("thank you so much!") == "Thanks"
    assert smalltalk("hi, what causes gout?") is None


@pytest.mark.parametrize(
    ("question", "qtype"),
    [
        ("What are the side effects of metformin?", "side_effects"),
        ("How is asthma treated?", "treatment"),
        ("What causes kidney stones?", "cause"),
        ("How can I prevent the flu?", "prevention"),
        ("What are the symptoms of lupus?", "symptoms"),
        ("How much ibuprofen can I take in a day?", "dosage"),
    ],
)
def test_bundled_head_predicts_clear_question_types(
    embedder: Embedder, question: str, qtype: str
) -> None:
    classifier = IntentClassifier.load()
    intent = classifier.predict(embedder.encode_one(question))
    assert intent.qtype == qtype
    assert intent.secondary == secondary_of(qtype)
    assert 0 < intent.confidence <= 1


def test_bundled_card_reports_held_out_accuracy() -> None:
    card = IntentClassifier.load().card
    assert card is not None and card.labels == QTYPES
    assert card.metrics["liveqa_qtype_accuracy"] > card.metrics["liveqa_majority_baseline"]

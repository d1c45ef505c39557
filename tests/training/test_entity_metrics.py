"""Entity-level exact-span precision, recall and F1 (insightray.training.metrics.entities)."""

from __future__ import annotations

import pytest

from insightray.models.text.ner_encoding import bio_spans
from insightray.training.metrics.entities import entity_scores, span_scores


def test_hand_made_case_matches_the_arithmetic() -> None:
    gold = [
        ["B-Disease", "I-Disease", "O", "B-Drug", "O"],  # Disease 0-2, Drug 3-4
        ["O", "B-Disease", "O", "B-Disease", "I-Disease"],  # Disease 1-2, Disease 3-5
    ]
    predicted = [
        ["B-Disease", "I-Disease", "O", "O", "O"],  # Disease 0-2 correct; Drug missed
        ["O", "B-Disease", "I-Disease", "B-Disease", "I-Disease"],  # 1-3 wrong end, 3-5 correct
    ]
    # gold 4 (Disease 3, Drug 1); predicted 3 (all Disease); correct 2 (both Disease)
    # overall: P = 2/3, R = 2/4 = 0.5, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
    # Disease: P = 2/3, R = 2/3, F1 = 2/3; Drug: nothing predicted, so P = R = F1 = 0
    scores = entity_scores(gold, predicted)
    assert (scores.gold, scores.predicted, scores.correct) == (4, 3, 2)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(0.5)
    assert scores.f1 == pytest.approx(4 / 7)
    assert scores.sentences == 2
    disease, drug = scores.per_type["Disease"], scores.per_type["Drug"]
    assert (disease.precision, disease.recall, disease.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (drug.gold, drug.predicted, drug.correct, drug.f1) == (1, 0, 0, 0.0)
    assert scores.to_dict()["per_type"]["Drug"]["gold"] == 1


def test_an_orphan_inside_tag_starts_an_entity_like_seqeval() -> None:
    assert bio_spans(["O", "I-A", "I-A", "B-A", "I-B"]) == [("A", 1, 3), ("A", 3, 4), ("B", 4, 5)]
    assert bio_spans([]) == []


def test_perfect_empty_and_mismatched_input() -> None:
    tags = [["B-X", "I-X", "O"]]
    assert entity_scores(tags, tags).f1 == 1.0
    nothing = entity_scores([["O"]], [["O"]])
    assert (nothing.precision, nothing.recall, nothing.f1) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        entity_scores([["O"]], [])
    with pytest.raises(ValueError):
        entity_scores([["O", "O"]], [["O"]])


def test_span_scores_work_on_character_offsets() -> None:
    gold = [("SYMPTOM", 0, 10, 20), ("DRUG", 0, 0, 5)]
    predicted = [("SYMPTOM", 0, 10, 20), ("SYMPTOM", 0, 10, 20), ("DRUG", 0, 0, 4)]
    scores = span_scores(gold, predicted)
    assert (scores.correct, scores.predicted, scores.gold) == (1, 2, 2)

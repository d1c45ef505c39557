"""Slot filling with negation, and the fallback gazetteer."""

from __future__ import annotations

import pytest

from insightray.assistant import slots
from insightray.assistant.slots import Slot, SlotConfig, SlotFiller, slots_by_type


def _found(slots: list[Slot]) -> set[tuple[str, str, bool]]:
    return {(s.type, s.text.lower(), s.negated) for s in slots}


@pytest.fixture(scope="module")
def filler() -> SlotFiller:
    return SlotFiller(SlotConfig(topics=("Gout", "Kidney Stones", "Fever", "Cough")))


def test_slots_with_negation_duration_and_severity(filler: SlotFiller) -> None:
    text = "I have had a fever and a bad headache for 3 days, no cough. I take ibuprofen."
    slots = filler.extract(text)
    found = _found(slots)
    assert ("Symptom", "fever", False) in found
    assert ("Symptom", "cough", True) in found
    assert ("Medication", "ibuprofen", False) in found
    assert ("Severity", "bad", False) in found
    durations = [s for s in slots if s.type == "Duration"]
    assert durations and "3 days" in durations[0].text
    for slot in slots:
        assert text[slot.start : slot.end] == slot.text


def test_no_fever_is_a_negated_symptom(filler: SlotFiller) -> None:
    assert ("Symptom", "fever", True) in _found(filler.extract("no fever"))


def test_topics_become_diseases_and_body_parts_locations(filler: SlotFiller) -> None:
    found = _found(filler.extract("Could kidney stones cause severe pain in my lower back?"))
    assert ("Disease", "kidney stones", False) in found
    assert ("Location", "lower back", False) in found
    assert ("Severity", "severe", False) in found


def test_fallback_gazetteer_respects_negation() -> None:
    filler = SlotFiller(SlotConfig(use_nlp=False, topics=("Gout",)))
    found = _found(filler.extract("Denies fever but has gout and chest pain since yesterday"))
    assert {("Symptom", "fever", True), ("Disease", "gout", False)} <= found
    assert ("Symptom", "chest pain", False) in found
    assert any(kind == "Duration" for kind, _, _ in found)


def test_broken_nlp_layer_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(config: SlotConfig) -> None:
        raise ImportError("insightray.nlp.ner is not there")

    monkeypatch.setattr(slots, "_nlp_tagger", broken)
    filler = SlotFiller()
    with pytest.warns(RuntimeWarning, match="small gazetteer"):
        found = _found(filler.extract("no fever"))
    assert ("Symptom", "fever", True) in found


def test_slots_by_type_lists_every_type() -> None:
    grouped = slots_by_type([])
    assert list(grouped) == ["Disease", "Symptom", "Medication", "Duration", "Severity", "Location"]

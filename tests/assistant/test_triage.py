"""Triage levels: the rules on hand-written cases, age / duration / temperature parsing, and
every assistant answer carrying ``triage`` (urgent answers lead with what to do now)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from insightray.assistant.chat import Assistant
from insightray.assistant.slots import SlotFiller
from insightray.assistant.triage import Triage, duration_hours, patient_age, temperature_celsius
from insightray.assistant.triage_rules import ADVICE, LEVELS, TRIAGE_RULES

DATA = Path(__file__).parent / "data"
#: The three urgent examples of issue 23, word for word.
ISSUE_URGENT = (
    "My 3 year old has had a fever of 40 C for two days and now a rash",
    "I twisted my ankle, it is badly swollen and I cannot put any weight on it",
    "I have been vomiting for 24 hours and cannot keep water down",
)


def _cases(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def triage() -> Triage:
    return Triage()


@pytest.fixture(scope="module")
def slots() -> SlotFiller:
    return SlotFiller()


def test_case_set_has_twenty_per_level_with_negated_and_paediatric_variants() -> None:
    cases = _cases("triage_cases.jsonl")
    for level in ("emergency", "urgent", "routine"):
        assert sum(c["level"] == level for c in cases) >= 20, level
    assert sum(c["level"] == "self-care" for c in cases) >= 5
    tags = [t for c in cases for t in c["tags"]]
    assert tags.count("negated") >= 5 and tags.count("paediatric") >= 10
    assert {c["level"] for c in cases} == set(LEVELS)


@pytest.mark.parametrize("name", ["triage_cases.jsonl", "triage_cases_heldout.jsonl"])
def test_accuracy_on_the_case_sets(name: str, triage: Triage, slots: SlotFiller) -> None:
    cases = _cases(name)
    wrong = []
    for case in cases:
        text = str(case["text"])
        found = triage.assess(text, slots.extract(text)).level
        if found != case["level"]:
            wrong.append((text, case["level"], found))
    assert len(wrong) / len(cases) <= 0.05, wrong


@pytest.mark.parametrize("text", ISSUE_URGENT)
def test_the_issue_examples_are_urgent(text: str, triage: Triage, slots: SlotFiller) -> None:
    result = triage.assess(text, slots.extract(text))
    assert result.level == "urgent", result
    assert result.reasons and result.advice == ADVICE["urgent"]


def test_negation_age_and_duration_change_the_level(triage: Triage) -> None:
    assert triage.assess("I twisted my ankle and cannot put weight on it").level == "urgent"
    assert triage.assess("I twisted my ankle but I can put weight on it").level == "self-care"
    assert triage.assess("My 6 week old baby has a temperature of 38.2").level == "urgent"
    assert triage.assess("My 8 year old has a temperature of 38.2 today").level == "self-care"
    assert triage.assess("I have had diarrhoea for 8 days").level == "urgent"
    assert triage.assess("I have had diarrhoea for 1 day").level == "self-care"
    assert triage.assess("My son has a fever and no rash").level != "urgent"
    assert triage.assess("What are the signs of dehydration in a child?").level == "routine"


def test_parsers() -> None:
    assert patient_age("my 18 month old") == 1.5
    assert patient_age("im 72 and have a cough") == 72.0
    assert patient_age("my toddler") == 2.0
    assert temperature_celsius("temp of 104 f") == 40.0
    assert temperature_celsius("i am 40 years old") is None
    assert duration_hours("for 3 days") == 72.0
    assert duration_hours("a headache") is None


def test_every_rule_names_its_public_source() -> None:
    assert all(rule.source and rule.level in LEVELS for rule in TRIAGE_RULES)


@pytest.mark.parametrize("text", ISSUE_URGENT)
def test_assistant_answers_carry_urgent_triage_and_lead_with_what_to_do(
    text: str, assistant: Assistant
) -> None:
    data = assistant.ask(text).to_dict()
    assert data["triage"] == "urgent"
    assert data["triage_detail"]["reasons"]
    assert not data["emergency"]
    assert data["answer"].startswith("What to do now: " + ADVICE["urgent"])


def test_every_answer_carries_triage(assistant: Assistant) -> None:
    assert assistant.ask("Hello!").to_dict()["triage"] == "routine"
    assert assistant.ask("What causes gout?").to_dict()["triage"] == "routine"
    emergency = assistant.ask("My baby has a fever and a rash that does not fade under a glass")
    assert emergency.to_dict()["triage"] == "emergency" and emergency.emergency
    assert assistant.ask("I have a runny nose since yesterday").to_dict()["triage"] == "self-care"

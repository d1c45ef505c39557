"""Emergency rules: every real-style emergency escalates, ordinary questions never do."""

from __future__ import annotations

import pytest

from insightray.assistant.emergency import EmergencyDetector, edit_distance

EMERGENCIES = [
    "I have crushing chest pain and I can't breathe",
    "chest pain and shortness of breath for the last 20 minutes",
    "My dad has chest pain and is sweating a lot",
    "chest pian and cant breath",
    "I think I'm having a heart attack",
    "pain in my chest spreading to my left arm",
    "heart attck right now, sweating and chest pain",
    "chest hurts real bad and im short of breath",
    "I'm having trouble breathing and my chest feels tight",
    "her face is drooping and her speech is slurred",
    "my husband suddenly can't move his right arm and his face looks droopy",
    "I think my mom is having a stroke",
    "sudden numbness on one side of my body",
    "worst headache of my life, came on out of nowhere",
    "suddenly I can't see out of one eye and my arm is numb",
    "I want to kill myself",
    "i dont want to live anymore",
    "I've been thinking about ending my life",
    "im sucidal",
    "I have been cutting myself and I can't stop",
    "my friend said she's going to take her own life tonight",
    "I just want to end it all",
    "I took a whole bottle of tylenol",
    "my son swallowed bleach",
    "I think I overdosed on my sleeping pills",
    "my daughter ate rat poison",
    "toddler swallowed a button battery",
    "I took 30 pills of ibuprofen an hour ago",
    "carbon monoxide alarm went off and we all feel dizzy",
    "my throat is closing after eating peanuts",
    "severe allergic reaction, lips and tongue swelling",
    "I think I'm going into anaphylactic shock",
    "anaphylaxsis after bee sting",
    "he is bleeding heavily from a deep cut on his leg",
    "the bleeding won't stop",
    "I am vomiting blood",
    "my grandfather is unconscious and won't wake up",
    "she passed out and is not responding",
    "my friend is unconcious",
    "my son is having a seizure right now",
    "he's been seizing for five minutes",
    "my baby is having a siezure",
    "I can't breathe",
    "my child is struggling to breathe and her lips are turning blue",
    "difficulty breathing after a bee sting",
    "my son is choking on food",
    "he collapsed and isn't breathing",
    "my wife hit her head and now she is confused and vomiting",
    "Chest pain and shortness of breath",
    "having a really bad asthma attack, inhaler not helping",
]

NOT_EMERGENCIES = [
    "What are the symptoms of a stroke?",
    "How is anaphylaxis treated?",
    "I have a mild headache since yesterday",
    "No chest pain today, just a cough",
    "no chest pain today",
    "I had a seizure two years ago, can I drive?",
    "What causes shortness of breath when exercising?",
    "Can I take ibuprofen with food?",
    "my knee hurts after running",
    "I don't have chest pain or trouble breathing, but I feel tired",
    "Denies chest pain, shortness of breath or fever.",
    "What is the usual dose of amoxicillin for a child?",
    "How do I prevent heart attacks?",
    "My father had a stroke last year, what rehab helps?",
    "What are the side effects of metformin?",
    "Is the flu contagious?",
    "I cut my finger slicing onions, it stopped bleeding quickly",
    "What is the treatment for high blood pressure?",
    "My son has a runny nose and a mild fever",
    "How can I lose weight safely?",
    "Can seizures be inherited?",
    "How long does a sprained ankle take to heal?",
    "my son is cooking dinner and has a sore throat",
    "What does a heart attack feel like?",
    "Hello, how are you?",
    "Thanks, that helped!",
    "I have had a dry cough for two weeks",
    "my toddler has a rash on his cheeks",
    "Is it safe to take aspirin during pregnancy?",
    "What are the signs of poisoning in children?",
]


@pytest.fixture(scope="module")
def detector() -> EmergencyDetector:
    return EmergencyDetector()


def test_the_lists_are_big_enough() -> None:
    assert len(EMERGENCIES) >= 40
    assert len(NOT_EMERGENCIES) >= 20


def test_every_emergency_is_escalated(detector: EmergencyDetector) -> None:
    missed = [text for text in EMERGENCIES if not detector.assess(text).is_emergency]
    assert missed == []


def test_no_false_alarm(detector: EmergencyDetector) -> None:
    alarms = {
        text: [m.rule for m in detector.assess(text).matches]
        for text in NOT_EMERGENCIES
        if detector.assess(text).is_emergency
    }
    assert alarms == {}


def test_negation_is_scoped_to_its_clause(detector: EmergencyDetector) -> None:
    assert not detector.assess("no chest pain today").is_emergency
    assert detector.assess("no fever, but I can't breathe").is_emergency
    assessment = detector.assess("I don't have chest pain or trouble breathing")
    assert not assessment.is_emergency
    assert assessment.negated


def test_pseudo_negation_does_not_hide_an_emergency(detector: EmergencyDetector) -> None:
    assert detector.assess("I'm not sure why but I have chest pain and can't breathe").is_emergency
    assert detector.assess("no idea what is going on, he collapsed").is_emergency


def test_advice_depends_on_the_category(detector: EmergencyDetector) -> None:
    suicide = detector.assess("I want to kill myself")
    assert suicide.category == "mental_health"
    assert "988" in suicide.advice
    assert "emergency" in detector.assess("he is not breathing").advice


def test_misspellings_are_corrected_but_real_words_are_not(detector: EmergencyDetector) -> None:
    assert detector.normalize("siezure unconcious anaphylaxsis") == (
        "seizure unconscious anaphylaxis"
    )
    assert detector.normalize("cooking") == "cooking"
    assert edit_distance("breating", "breathing") == 1


def test_past_events_and_assisted_suicide_debates_are_not_escalated(
    detector: EmergencyDetector,
) -> None:
    assert not detector.assess("Is botox useful for someone who had a stroke?").is_emergency
    assert not detector.assess("Is physician assisted suicide legal in any state?").is_emergency
    assert detector.assess("I think my dad just had a stroke").is_emergency

"""The assistant end to end on the small index: answers, citations, follow-ups, refusals."""

from __future__ import annotations

from insightray.assistant.chat import Assistant
from insightray.assistant.responses import NOTICE


def test_answer_contract_and_citations(assistant: Assistant) -> None:
    answer = assistant.ask("What causes gout?")
    data = answer.to_dict()
    assert data["kind"] == "extractive"
    assert not data["emergency"]
    assert set(data["intent"]) >= {"primary", "secondary"}
    assert data["intent"]["primary"] in ("Question", "Information_Seeking")
    assert data["confidence"] >= assistant.config.min_confidence
    assert len(data["sources"]) >= 5
    assert data["sources"][0]["focus"] == "Gout"
    scores = [source["score"] for source in data["sources"]]
    assert scores == sorted(scores, reverse=True)
    for source in data["sources"]:
        assert {"source", "document_id", "qa_id", "url", "score"} <= set(source)
    assert data["answer"].endswith(NOTICE)


def test_every_answer_sentence_is_cut_from_a_cited_passage(assistant: Assistant) -> None:
    for question in (
        "What are the symptoms of shingles?",
        "How is psoriasis treated?",
        "Is celiac disease inherited?",
        "What is glaucoma?",
    ):
        answer = assistant.ask(question)
        assert answer.composed is not None and answer.composed.sentences, question
        citations = {c.number: c for c in answer.composed.citations}
        passages = {p.passage_id: p for p in answer.composed.evidence}
        retrieved = {(h.passage.document_id, h.passage.qa_id) for h in answer.sources}
        for sentence in answer.composed.sentences:
            cited = citations[sentence.citation]
            passage = passages[sentence.passage_id]
            assert sentence.text in passage.text
            assert (passage.document_id, passage.qa_id) in retrieved
            assert (passage.document_id, passage.qa_id, passage.url) == (
                cited.document_id, cited.qa_id, cited.url,
            )  # fmt: skip
            assert f"{sentence.text} [{sentence.citation}]" in answer.answer


def test_follow_ups_resolve_to_the_disease_in_focus(assistant: Assistant) -> None:
    first = assistant.ask("What is gout?")
    assert first.focus == "Gout"
    follow = assistant.ask("How is it treated?", first.conversation_id)
    assert follow.resolved_question == "How is Gout treated?"
    assert follow.sources[0].passage.focus == "Gout"
    again = assistant.ask("what about treatment?", first.conversation_id)
    assert "Gout" in again.resolved_question
    contagious = assistant.ask("Is it contagious?", first.conversation_id)
    assert contagious.resolved_question == "Is Gout contagious?"
    other = assistant.ask("And what causes shingles?", first.conversation_id)
    assert other.focus == "Shingles"
    state = assistant.conversations.get(first.conversation_id)
    assert state.focus == "Shingles" and len(state.context) == 5
    assert set(state.to_dict()) >= {"intent", "entities", "context", "confidence", "focus"}


def test_a_new_conversation_has_no_focus(assistant: Assistant) -> None:
    answer = assistant.ask("Is it contagious?")
    assert answer.resolved_question == "Is it contagious?"


def test_off_topic_question_gets_i_dont_know(assistant: Assistant) -> None:
    answer = assistant.ask("How do I replace the brake pads on my car?")
    assert "I don't know" in answer.answer
    assert answer.kind in ("dont_know", "out_of_scope")
    assert answer.composed is None
    assert answer.answer.endswith(NOTICE)


def test_emergency_is_escalated_and_negated_emergency_is_not(assistant: Assistant) -> None:
    urgent = assistant.ask("I have crushing chest pain and can't breathe")
    assert urgent.emergency and urgent.kind == "emergency"
    assert urgent.intent.primary == "Emergency"
    assert "emergency" in urgent.answer.lower()
    calm = assistant.ask("no chest pain today, is gout contagious?")
    assert not calm.emergency
    negated = [s for s in calm.slots if s.negated]
    assert any("chest pain" in s.text.lower() for s in negated)


def test_greeting_uses_a_template(assistant: Assistant) -> None:
    answer = assistant.ask("Hello!")
    assert answer.kind == "greeting"
    assert answer.intent.secondary == "Greeting"
    assert not answer.sources


def test_answers_about_a_medicine_the_evidence_never_names_are_refused(
    assistant: Assistant,
) -> None:
    answer = assistant.ask("What are the side effects of metformin?")
    if answer.kind == "extractive":  # only from passages that name it
        assert answer.composed is not None
        assert any("metformin" in p.text.lower() or "metformin" in p.question.lower()
                   for p in answer.composed.evidence)  # fmt: skip
    else:
        assert answer.answer.startswith("I don't know")
        assert "metformin" in answer.answer
        assert "package leaflet" in answer.answer and "pharmacist" in answer.answer

"""Clinical text and the assistant over HTTP, with the versions that answered."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest

from insightray.assistant.index import build_index
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import Api, start_api

NOTE = "Denies chest pain. Cough for 3 days, possible pneumonia."
GOUT = (
    "Gout is a form of arthritis caused by uric acid crystals building up in a joint. "
    "It causes sudden attacks of pain, swelling and redness, often in the big toe."
)


def test_text_analyze_returns_entities_with_context_and_versions(api: Api) -> None:
    response = api.client.post(
        "/v1/text/analyze", json={"text": NOTE}, headers=api.as_role("researcher")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    entities = {e["text"]: e for e in body["entities"]}
    assert entities["chest pain"]["negated"] is True
    assert entities["pneumonia"]["uncertain"] is True
    assert NOTE[entities["Cough"]["start"] : entities["Cough"]["end"]] == "Cough"
    assert body["diseases"] and 0 <= body["diseases"][0]["score"] <= 1
    assert body["explanation"] is None
    explained = api.client.post(
        "/v1/text/analyze",
        json={"text": "itchy red rash with dry scaly patches", "explain": True},
        headers=api.as_role("researcher"),
    ).json()["explanation"]
    assert explained["method"] == "integrated-gradients" and len(explained["words"]) == 7
    attention = api.client.post(
        "/v1/text/analyze",
        json={"text": "itchy red rash", "explain": True, "explain_method": "attention-rollout"},
        headers=api.as_role("researcher"),
    ).json()["explanation"]
    assert attention["method"] == "attention-rollout" and attention["convergence_delta"] is None
    assert [w["text"] for w in attention["words"]] == ["itchy", "red", "rash"]
    assert max(w["weight"] for w in attention["words"]) == 1.0
    unknown = api.client.post(
        "/v1/text/analyze",
        json={"text": "itchy red rash", "explain": True, "explain_method": "saliency"},
        headers=api.as_role("researcher"),
    )
    assert unknown.status_code == 422
    assert body["models"] == [
        {"name": "ner-ncbi-bilstm-crf", "version": "1.0.0"},
        {"name": "textcls-symptom2disease-minilm", "version": "1.0.0"},
    ]
    empty = api.client.post("/v1/text/analyze", json={"text": ""}, headers=api.as_role("admin"))
    assert empty.status_code == 422


def test_assistant_without_an_index_answers_503(api: Api) -> None:
    response = api.client.post(
        "/v1/assistant/ask", json={"question": "What causes gout?"}, headers=api.as_role("admin")
    )
    assert response.status_code == 503
    assert "insightray index build" in response.json()["error"]["message"]


@pytest.fixture(scope="session")
def indexed_loader(tmp_path_factory: pytest.TempPathFactory) -> ModelLoader:
    """A loader whose knowledge index holds two short documents."""
    folder = tmp_path_factory.mktemp("knowledge")
    source = folder / "knowledge.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["focus", "question", "answer", "url"])
        writer.writerow(["Gout", "What is gout?", GOUT, "https://example.org/gout"])
        writer.writerow(
            ["Asthma", "What is asthma?", "Asthma narrows the airways.", "https://example.org/a"]
        )
    build_index([source], folder / "index", progress=False)
    return ModelLoader(index_dir=folder / "index")


@pytest.fixture
def assistant_api(
    serve_settings: ServeSettings, indexed_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    yield from start_api(serve_settings, indexed_loader, password_hash)


def test_assistant_answers_with_citations_and_a_conversation(assistant_api: Api) -> None:
    headers = assistant_api.as_role("clinician")
    first = assistant_api.client.post(
        "/v1/assistant/ask", json={"question": "What is gout?"}, headers=headers
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["model"] == {"name": "assistant-intent", "version": "1.0.0"}
    assert body["sources"][0]["url"] == "https://example.org/gout"
    assert body["emergency"] is False and body["conversation_id"]
    follow = assistant_api.client.post(
        "/v1/assistant/ask",
        json={"question": "I have crushing chest pain and cannot breathe",
              "conversation_id": body["conversation_id"]},
        headers=headers,
    )  # fmt: skip
    assert follow.json()["emergency"] is True
    assert follow.json()["conversation_id"] == body["conversation_id"]

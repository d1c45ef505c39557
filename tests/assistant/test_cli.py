"""``insightray ask`` on the small index: the JSON contract and JSON Lines order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insightray.assistant.chat import Assistant
from insightray.assistant.index import KnowledgeIndex
from insightray.cli import assistant as cli_assistant
from insightray.cli.common import app

CONTRACT = {"answer", "intent", "slots", "confidence", "emergency", "sources"}


@pytest.fixture()
def shared(monkeypatch: pytest.MonkeyPatch, assistant: Assistant) -> Assistant:
    """The session's assistant stands in for the one the command would load."""
    monkeypatch.setattr(cli_assistant, "_assistant", lambda index_dir, threads: assistant)
    return assistant


def test_ask_json_contract(shared: Assistant, small_index: KnowledgeIndex) -> None:
    result = CliRunner().invoke(
        app,
        ["ask", "What are the symptoms of shingles?", "--json", "--index", str(small_index.folder)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= CONTRACT
    assert set(data["intent"]) >= {"primary", "secondary"}
    assert isinstance(data["emergency"], bool)
    assert len(data["sources"]) >= 5
    assert {"source", "document_id", "qa_id", "url", "score"} <= set(data["sources"][0])


def test_ask_file_json_lines_keep_input_order(small_index: KnowledgeIndex, tmp_path: Path) -> None:
    """The real command path: loads the index given by --index, models once."""
    questions = ["What is glaucoma?", "I want to kill myself", "", "How is gout treated?"]
    file = tmp_path / "questions.txt"
    file.write_text("\n".join(questions) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["ask", "--file", str(file), "--json", "--index", str(small_index.folder)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["question"] for r in records] == questions
    assert set(records[0]) >= CONTRACT and records[0]["sources"][0]["focus"] == "Glaucoma"
    assert records[1]["emergency"] is True
    assert "error" in records[2]
    assert records[3]["sources"][0]["focus"] == "Gout"


def test_ask_needs_a_question(shared: Assistant) -> None:
    result = CliRunner().invoke(app, ["ask"])
    assert result.exit_code != 0


def test_index_build_logs_its_progress(tmp_path: Path) -> None:
    source = tmp_path / "knowledge.csv"
    rows = ["focus,question,answer,url"] + [
        f"Topic {n},What is topic {n}?,Topic {n} is condition number {n}.,https://example.org/{n}"
        for n in range(12)
    ]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    folder = tmp_path / "index"
    result = CliRunner().invoke(
        app, ["index", "build", "--data", str(source), "--index", str(folder), "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    log = (tmp_path / "index-build.log").read_text(encoding="utf-8")
    assert "embedding passages: 12/12 (100 %" in log

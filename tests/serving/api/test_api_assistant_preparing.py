"""The assistant while its knowledge index is built: "preparing, N %" with triage, not 503;
and the background build itself, on a small real knowledge file."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from insightray.serving.hosting.index_preparation import IndexPreparation, IndexPreparingError
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import Api, start_api


@pytest.fixture
def preparing_api(
    serve_settings: ServeSettings, tmp_path: Path, password_hash: str
) -> Iterator[Api]:
    index_dir = tmp_path / "prepared" / "index"
    preparation = IndexPreparation(index_dir)
    index_dir.parent.mkdir(parents=True)
    busy = {"done": 420, "total": 1000, "pid": os.getpid(), "host": os.uname().nodename}
    preparation.lock.write_text(json.dumps(busy))  # another replica is 42 % through
    loader = ModelLoader(index_dir=index_dir, preparation=preparation)
    yield from start_api(serve_settings, loader, password_hash)


def test_assistant_says_preparing_with_triage_instead_of_503(preparing_api: Api) -> None:
    response = preparing_api.client.post(
        "/v1/assistant/ask",
        json={"question": "I have been vomiting for 24 hours and cannot keep water down"},
        headers=preparing_api.as_role("clinician"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "preparing" and body["preparing"] == {"percent": 42}
    assert "Preparing, 42 %" in body["answer"]
    assert body["triage"] == "urgent"
    assert body["answer"].startswith("What to do now:")


def test_background_build_reports_progress_then_the_index(tmp_path: Path) -> None:
    source = tmp_path / "knowledge.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["focus", "question", "answer", "url"])
        for number in range(40):
            writer.writerow([f"Topic {number}", f"What is topic {number}?",
                             f"Topic {number} is a condition number {number}. " * 5,
                             f"https://example.org/{number}"])  # fmt: skip
    preparation = IndexPreparation(tmp_path / "home" / "index", sources=[source], threads=1)
    assert preparation.needed() and preparation.start()
    assert not IndexPreparation(preparation.index_dir, sources=[source]).start()  # one builds
    seen = []
    while preparation._thread is not None and preparation._thread.is_alive():
        try:
            preparation.check()
        except IndexPreparingError as error:
            seen.append(error.percent)
        preparation._thread.join(0.05)
    assert preparation.error is None
    assert (preparation.index_dir / "manifest.json").is_file()
    assert not preparation.building() and not preparation.needed()
    assert all(0 <= p <= 100 for p in seen)

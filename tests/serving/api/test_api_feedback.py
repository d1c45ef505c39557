"""Readers' feedback over HTTP: verdicts stored per result (audited), live precision and
agreement per model version on ``/metrics``, and the retraining trigger firing once per
crossing; on SQLite and PostgreSQL, with the real detector and fracture classifier."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from insightray.config import data_root
from insightray.serving.deps import Principal
from insightray.serving.hosting.feedback import save_feedback
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import AuditRecord, FindingFeedback, User
from tests.serving.api.conftest import DETECTOR, DETECTOR_VERSION, Api, start_api

TB_IMAGE = data_root() / "cxr" / "tbx11k" / "images" / "tb0020.jpg"
FRACTURE_DIR = data_root() / "fracture" / "bone_fracture_roboflow"


@pytest.fixture
def small_window(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    """The service with a trigger over the last 3 verdicts at 50 % agreement."""
    yield from start_api(
        serve_settings, model_loader, password_hash, retrain_window=3, retrain_agreement=0.5
    )


def _metrics(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.client.get("/metrics", headers=api.as_role("auditor"))
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(figures: dict[Any, float], name: str, **labels: str) -> float | None:
    return figures.get((name, tuple(sorted(labels.items()))))


def _judge(api: Api, result: str, finding: int, verdict: str, role: str = "clinician",
           **extra: str) -> Any:  # fmt: skip
    return api.client.put(
        f"/v1/results/{result}/feedback/{finding}",
        json={"verdict": verdict, **extra},
        headers=api.as_role(role),
    )


def _actions(api: Api, prefix: str) -> list[str]:
    with api.services.db.session(read_only=True) as session:
        return [a for a in session.scalars(select(AuditRecord.action)) if a.startswith(prefix)]


def test_box_verdicts_feed_metrics_and_the_trigger_fires_once_per_crossing(
    small_window: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = small_window
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    result = body["result_id"]
    boxes = len(body["findings"]) + len(body["candidates"])
    assert body["findings"] and boxes >= 3, "the TBX11K image has boxes to judge"
    model = {"model": DETECTOR, "version": DETECTOR_VERSION}

    first = _judge(api, result, 0, "accept")
    assert first.status_code == 200, first.text
    assert first.json()["kind"] == "box" and first.json()["operating"] is True
    assert first.json()["model_label"] == body["findings"][0]["label"]
    figures = _metrics(api)
    assert _value(figures, "insightray_feedback_agreement", **model) == 1.0
    assert _value(figures, "insightray_feedback_judged", kind="box", **model) == 1.0
    assert _value(figures, "insightray_feedback_recent_agreement", **model) is None  # < 3
    assert _value(figures, "insightray_retraining_needed", **model) == 0.0

    with caplog.at_level(logging.WARNING, logger="insightray.serving.hosting.feedback"):
        assert _judge(api, result, 1, "reject").status_code == 200
        corrected = _judge(api, result, 2, "correct", label="tuberculosis")
    assert corrected.status_code == 200 and corrected.json()["label"] == "tuberculosis"
    figures = _metrics(api)  # 1 of 3 accepted: below 50 %
    assert _value(figures, "insightray_feedback_precision", **model) == pytest.approx(1 / 3)
    assert _value(figures, "insightray_feedback_recent_agreement", **model) == pytest.approx(1 / 3)
    assert _value(figures, "insightray_retraining_needed", **model) == 1.0
    assert _value(figures, "insightray_retraining_triggers_total", **model) == 1.0
    assert _actions(api, "retraining.") == ["retraining.trigger"]
    assert any("retraining.trigger" in r.getMessage() for r in caplog.records)
    assert not any(study["id"] in r.getMessage() for r in caplog.records)

    assert _judge(api, result, 1, "reject").status_code == 200  # still below: no second event
    assert _actions(api, "retraining.") == ["retraining.trigger"]
    _judge(api, result, 1, "accept")
    _judge(api, result, 2, "accept")  # 3 of 3: re-armed
    figures = _metrics(api)
    assert _value(figures, "insightray_feedback_agreement", **model) == 1.0
    assert _value(figures, "insightray_retraining_needed", **model) == 0.0
    _judge(api, result, 2, "reject")
    _judge(api, result, 0, "reject")  # below again: the second crossing
    figures = _metrics(api)
    assert _value(figures, "insightray_retraining_triggers_total", **model) == 2.0
    assert _actions(api, "retraining.") == [
        "retraining.trigger", "retraining.rearm", "retraining.trigger",
    ]  # fmt: skip

    # One row per reader and finding, the newest verdict in force; every change audited.
    listed = api.client.get(f"/v1/results/{result}/feedback", headers=headers).json()["items"]
    assert [(i["finding"], i["verdict"]) for i in listed] == [(0, "reject"), (1, "accept"),
                                                               (2, "reject")]  # fmt: skip
    with api.services.db.session(read_only=True) as session:
        assert len(list(session.scalars(select(FindingFeedback)))) == 3
    assert len(_actions(api, "feedback.save")) == 8


def test_bad_verdicts_and_foreign_callers_are_refused(small_window: Api) -> None:
    api = small_window
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    result = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()["result_id"]
    assert _judge(api, result, 9999, "accept").status_code == 422
    assert _judge(api, result, 0, "maybe").status_code == 422
    assert _judge(api, result, 0, "correct").status_code == 422  # a correction needs a label
    assert _judge(api, result, 0, "correct", label="x\ny").status_code == 422
    assert _judge(api, "0" * 32, 0, "accept").status_code == 404
    assert _judge(api, result, 0, "accept", role="researcher").status_code == 404  # not theirs
    assert _judge(api, result, 0, "accept", role="auditor").status_code == 403
    assert _judge(api, result, 0, "accept", role="admin").status_code == 200  # sees every study
    assert "denied:study_write" in _actions(api, "denied:")
    assert (
        api.client.put(f"/v1/results/{result}/feedback/0", json={"verdict": "accept"}).status_code
        == 401
    )


def test_the_fracture_label_is_accepted_or_rejected(api: Api) -> None:
    rows = (FRACTURE_DIR / "images.csv").read_text().splitlines()[1:] if (
        FRACTURE_DIR / "images.csv").is_file() else []  # fmt: skip
    if not rows:
        pytest.skip("bone fracture data not found")
    headers = api.as_role("clinician")
    study = api.upload(FRACTURE_DIR / rows[0].split(",")[0])
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "fracture"}, headers=headers
    ).json()
    result, model = body["result_id"], body["model"]
    assert _judge(api, result, 1, "accept").status_code == 422  # one label, finding 0
    assert _judge(api, result, 0, "correct", label="fractured").status_code == 422
    saved = _judge(api, result, 0, "reject")
    assert saved.status_code == 200 and saved.json()["kind"] == "label"
    assert saved.json()["model_label"] == body["fracture"]["label"]
    figures = _metrics(api)
    labels = {"model": model["name"], "version": model["version"]}
    assert _value(figures, "insightray_feedback_judged", kind="label", **labels) == 1.0
    assert _value(figures, "insightray_feedback_agreement", **labels) == 0.0
    assert _value(figures, "insightray_feedback_precision", **labels) is None  # no boxes
    assert _value(figures, "insightray_retraining_needed", **labels) == 0.0  # window of 50


def test_concurrent_verdicts_fire_the_trigger_once(small_window: Api) -> None:
    """Two readers judging every box at once, each verdict sent six times: one row per reader
    and finding, and one crossing however the requests interleave."""
    api = small_window
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=api.as_role("clinician")
    ).json()
    boxes = len(body["findings"]) + len(body["candidates"])
    with api.services.db.session(read_only=True) as session:
        users = {u.username: u.id for u in session.scalars(select(User))}
    readers = [Principal(n, n[:-1], users[n], f"user:{n}") for n in ("clinician1", "admin1")]
    jobs = [(who, index) for who in readers for index in range(boxes)] * 6
    with ThreadPoolExecutor(max_workers=12) as pool:
        rows = list(
            pool.map(
                lambda job: save_feedback(
                    api.services, job[0], body["result_id"], job[1], "reject"
                ),
                jobs,
            )
        )
    assert len(rows) == len(jobs)
    with api.services.db.session(read_only=True) as session:
        assert len(list(session.scalars(select(FindingFeedback)))) == 2 * boxes
    assert _actions(api, "retraining.") == ["retraining.trigger"]

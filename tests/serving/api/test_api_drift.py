"""The service's rolling drift window: chest X-rays (TBX11K, held out) then bone X-rays sent
to the real chest detector move the window's gauges on ``/metrics``, and the retraining
trigger fires on drift (audited) and re-arms when the window is chest X-rays again; then the
real ``/metrics`` carries every series the example Grafana dashboard queries.

The end-to-end run (36 analyses) is on SQLite; the trigger's shared state is tested on
SQLite and PostgreSQL with :func:`record_drift` directly."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from insightray.config import data_root
from insightray.serving.hosting.feedback import feedback_figures, record_drift
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import AuditRecord
from tests.serving.api.conftest import DETECTOR_VERSION, Api, start_api

TBX11K = data_root() / "cxr" / "tbx11k"
BONES = data_root() / "fracture" / "bone_fracture_roboflow" / "images"
WINDOW = 12
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def drift_api(tmp_path: Path, model_loader: ModelLoader, password_hash: str) -> Iterator[Api]:
    """On SQLite, a window of 12 images, compared once full and then every 6 new ones."""
    yield from start_api(
        ServeSettings(home=tmp_path / "home"), model_loader, password_hash,
        drift_window=WINDOW, drift_min_images=WINDOW, drift_every=WINDOW // 2,
        retrain_window=1,
    )  # fmt: skip


def _chest_images(count: int, skip: int = 0) -> list[Path]:
    names = (TBX11K / "val_list.txt").read_text().split()[skip : skip + count]
    return [TBX11K / "images" / Path(name).name for name in names]


def _send(api: Api, paths: list[Path]) -> list[dict[str, Any]]:
    headers = api.as_role("clinician")
    bodies = []
    for path in paths:
        study = api.upload(path)
        response = api.client.post(
            f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
        )
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    api.services.host.drift.settle()  # type: ignore[union-attr]
    return bodies


def _gauges(api: Api) -> dict[str, float]:
    """The detector's drift and retraining series, by name (PSI by ``psi:<feature>``)."""
    text = api.client.get("/metrics", headers=api.as_role("auditor")).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("version") != DETECTOR_VERSION:
                continue
            feature = sample.labels.get("feature")
            found[sample.name if feature is None else f"psi:{feature}"] = sample.value
    return found


def _trigger_records(api: Api) -> list[tuple[str, str, str]]:
    with api.services.db.session(read_only=True) as session:
        rows = session.execute(
            select(AuditRecord.action, AuditRecord.outcome, AuditRecord.actor).where(
                AuditRecord.action.like("retraining.%")
            )
        )
        return [(row[0], row[1], row[2]) for row in rows]


def test_bone_xrays_drift_the_chest_detectors_window_and_fire_the_trigger(
    drift_api: Api,
) -> None:
    api = drift_api
    _send(api, _chest_images(WINDOW))
    chest = _gauges(api)
    assert chest["insightray_drift_window_images"] == WINDOW
    assert chest["insightray_drift_detected"] == 0.0
    assert chest["insightray_drift_ood_rate"] <= 1 / WINDOW
    assert chest["insightray_drift_embedding_p_value"] > 0.05
    assert 0.0 < chest["insightray_drift_score_mean"] < 1.0
    assert {"psi:mean", "psi:modality", "psi:output_max_score"} <= set(chest)
    assert chest.get("insightray_retraining_needed", 0.0) == 0.0
    assert _trigger_records(api) == []

    _send(api, sorted(BONES.iterdir())[:WINDOW])
    bones = _gauges(api)
    assert bones["insightray_drift_window_images"] == WINDOW
    assert bones["insightray_drift_detected"] == 1.0
    assert bones["insightray_drift_ood_rate"] >= 0.5
    assert bones["insightray_drift_embedding_p_value"] < 0.05
    assert bones["insightray_drift_psi_max"] > chest["insightray_drift_psi_max"]
    assert bones["insightray_retraining_needed"] == 1.0
    assert bones["insightray_retraining_triggers_total"] == 1.0
    assert _trigger_records(api) == [("retraining.trigger", "drift", "system")]

    chest_again = _send(api, _chest_images(WINDOW, skip=WINDOW))  # chest X-rays again
    again = _gauges(api)
    assert again["insightray_drift_detected"] == 0.0
    assert again["insightray_retraining_needed"] == 0.0
    assert again["insightray_retraining_triggers_total"] == 1.0
    assert _trigger_records(api) == [
        ("retraining.trigger", "drift", "system"), ("retraining.rearm", "drift", "system"),
    ]  # fmt: skip

    # One accepted box, so the feedback series exist too: the dashboard cannot rot.
    judged = next(b for b in chest_again if b["findings"] or b["candidates"])
    verdict = api.client.put(
        f"/v1/results/{judged['result_id']}/feedback/0", json={"verdict": "accept"},
        headers=api.as_role("clinician"),
    )  # fmt: skip
    assert verdict.status_code == 200, verdict.text
    text = api.client.get("/metrics", headers=api.as_role("auditor")).text
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "insightray-monitoring.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    names = set(re.findall(r"\binsightray_[a-z0-9_]+", queries))
    assert len(names) >= 10
    assert not sorted(n for n in names if f"\n{n}{{" not in text), "dashboard series missing"


def test_the_drift_trigger_fires_once_across_replicas(api: Api) -> None:
    """Two replicas reporting the same change: one event; the agreement state is untouched."""
    db, audit = api.services.db, api.services.audit
    assert record_drift(db, audit, "m", "1", True)
    assert not record_drift(db, audit, "m", "1", True)  # the other replica: already set
    assert not record_drift(db, audit, "m", "2", False)  # nothing to re-arm
    assert record_drift(db, audit, "m", "1", False)
    assert record_drift(db, audit, "m", "1", True)
    (figures,) = [f for f in feedback_figures(db, 50) if f.version == "1"]
    assert figures.retraining_needed and figures.triggers == 2 and figures.judged == {}
    assert _trigger_records(api) == [
        ("retraining.trigger", "drift", "system"), ("retraining.rearm", "drift", "system"),
        ("retraining.trigger", "drift", "system"),
    ]  # fmt: skip
    assert audit.verify().ok

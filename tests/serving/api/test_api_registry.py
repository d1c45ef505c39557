"""The model registry over HTTP: sticky A/B split, shadow mode, activation without restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from insightray.models.catalog import bundled_models_dir
from insightray.serving.hosting.rollout import user_bucket
from insightray.serving.storage.db.models import AuditRecord
from tests.serving.api.conftest import CHEST_DICOM, DETECTOR, DETECTOR_VERSION, Api


def _candidate(tmp_path: Path, version: str) -> Path:
    """A copy of the bundled detector registered as another version (same weights)."""
    folder = tmp_path / f"detector-{version}"
    shutil.copytree(bundled_models_dir() / DETECTOR, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "version": version}))
    return folder / "card.json"


def _register(api: Api, tmp_path: Path, version: str, **fields: object) -> dict[str, object]:
    response = api.client.post(
        f"/v1/models/{DETECTOR}/versions",
        json={"card_path": str(_candidate(tmp_path, version)), **fields},
        headers=api.as_role("admin"),
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _served_version(api: Api, headers: dict[str, str], study_id: str) -> str:
    response = api.client.post(
        f"/v1/studies/{study_id}/analyze", json={"task": "cxr"}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["model"]["version"])


def test_bundled_models_are_registered_in_production(api: Api) -> None:
    models = api.client.get("/v1/models", headers=api.as_role("auditor")).json()["items"]
    by_name = {m["name"]: m for m in models}
    assert by_name[DETECTOR]["task"] == "cxr"
    (version,) = by_name[DETECTOR]["versions"]
    assert version["stage"] == "production" and version["traffic_percent"] == 100
    assert len(version["weights_sha256"]) == 64
    assert {"ner-ncbi-bilstm-crf", "textcls-symptom2disease-minilm"} <= set(by_name)


def test_ab_split_is_sticky_per_user(api: Api, tmp_path: Path) -> None:
    candidate = _register(api, tmp_path, "0.2.0", traffic_percent=30)
    assert candidate["stage"] == "staging" and candidate["traffic_percent"] == 30
    versions = api.client.get(f"/v1/models/{DETECTOR}", headers=api.as_role("admin")).json()
    shares = {v["version"]: v["traffic_percent"] for v in versions["versions"]}
    assert shares == {DETECTOR_VERSION: 70, "0.2.0": 30}
    users = [f"user{i}" for i in range(200)]
    first = {u: api.services.registry.choose("cxr", u).served.version for u in users}
    again = {u: api.services.registry.choose("cxr", u).served.version for u in users}
    assert first == again
    share = sum(v == "0.2.0" for v in first.values()) / len(users)
    assert 0.2 < share < 0.4
    assert all((v == "0.2.0") == (user_bucket(u, DETECTOR) < 30) for u, v in first.items())
    # over HTTP: the clinician lands in one arm and stays there
    study = api.upload(CHEST_DICOM)
    headers = api.as_role("clinician")
    expected = "0.2.0" if user_bucket("clinician1", DETECTOR) < 30 else DETECTOR_VERSION
    assert {_served_version(api, headers, study["id"]) for _ in range(3)} == {expected}


def test_shadow_runs_the_candidate_but_returns_production(api: Api, tmp_path: Path) -> None:
    _register(api, tmp_path, "0.3.0", shadow=True)
    study = api.upload(CHEST_DICOM)
    assert _served_version(api, api.as_role("clinician"), study["id"]) == DETECTOR_VERSION
    with api.services.db.session(read_only=True) as session:
        shadows = list(
            session.scalars(select(AuditRecord).where(AuditRecord.action == "study.analyze.shadow"))
        )
    assert [(r.model_version, r.outcome, r.study_id) for r in shadows] == [
        ("0.3.0", "shadow", study["id"])
    ]
    metrics = api.client.get("/metrics", headers=api.as_role("admin")).text
    assert 'role="shadow"' in metrics and 'version="0.3.0"' in metrics


def test_promotion_takes_effect_without_restart(api: Api, tmp_path: Path) -> None:
    _register(api, tmp_path, "0.4.0")
    study = api.upload(CHEST_DICOM)
    headers = api.as_role("clinician")
    assert _served_version(api, headers, study["id"]) == DETECTOR_VERSION
    promoted = api.client.put(
        f"/v1/models/{DETECTOR}/versions/0.4.0",
        json={"stage": "production"},
        headers=api.as_role("admin"),
    )
    assert promoted.status_code == 200 and promoted.json()["traffic_percent"] == 100
    assert _served_version(api, headers, study["id"]) == "0.4.0"
    old = api.client.get(f"/v1/models/{DETECTOR}", headers=headers).json()["versions"][0]
    assert (old["version"], old["stage"]) == (DETECTOR_VERSION, "archived")
    refused = api.client.put(
        f"/v1/models/{DETECTOR}/versions/{DETECTOR_VERSION}",
        json={"traffic_percent": 10},
        headers=api.as_role("admin"),
    )
    assert refused.status_code == 422  # an archived version takes no traffic
    duplicate = api.client.post(
        f"/v1/models/{DETECTOR}/versions",
        json={"card_path": str(_candidate(tmp_path / "again", "0.4.0"))},
        headers=api.as_role("admin"),
    )
    assert duplicate.status_code == 409

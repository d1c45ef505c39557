"""``/v1/pacs``: the PACS verbs for admins, against a real Orthanc."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.hosting.pacs import PacsGateway
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import AuditRecord
from tests.pacs.orthanc import Orthanc, free_port, orthanc_installed, run_orthanc
from tests.serving.api.conftest import Api, start_api

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.usefixtures("one_thread")

#: Identifiers of the chest image (its patient name, ID and study UID root).
NEEDLES = ("CompressedSamples", "9RG1", "1.3.6.1.4.1.5962")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not orthanc_installed():
        pytest.skip("Orthanc not installed: apt-get install orthanc orthanc-dicomweb (make test)")
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture
def chest(shared_data: Path) -> Path:
    return shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm"


def _routing(folder: Path, destination: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "routing.yaml"
    path.write_text(
        "rules:\n  - name: chest\n    match: {modality: [CR]}\n    task: detection\n"
        f"    destination: {destination}\n"
        f"retry: {{attempts: 1}}\ndead_letter: {folder / 'dead'}\n"
    )
    return path


def _api(
    settings: ServeSettings, loader: ModelLoader, password_hash: str, **pacs: object
) -> Iterator[Api]:
    yield from start_api(settings, loader, password_hash, **pacs)


def test_pacs_routes_are_for_admins_only(api: Api) -> None:
    for role in ("clinician", "researcher", "auditor"):
        for method, path, body in (
            ("GET", "/v1/pacs/status", None),
            ("POST", "/v1/pacs/studies/search", {}),
            ("POST", "/v1/pacs/pull", {"study_uid": "1.2.3"}),
            ("GET", "/v1/pacs/dead-letters", None),
        ):
            answer = api.client.request(method, path, json=body, headers=api.as_role(role))
            assert answer.status_code == 403, (role, path)
            assert answer.json()["error"]["type"] == "PermissionDeniedError"
    assert api.client.get("/v1/pacs/status").status_code == 401


def test_without_a_configured_pacs_the_routes_answer_503(api: Api) -> None:
    headers = api.as_role("admin")
    answer = api.client.post("/v1/pacs/studies/search", json={}, headers=headers)
    assert answer.status_code == 503
    assert "INSIGHTRAY_PACS_DICOMWEB_URL" in answer.json()["error"]["message"]
    status = api.client.get("/v1/pacs/status", headers=headers).json()
    assert status["reachable"] is False and status["dicomweb_url"] is None


def test_search_then_pull_stores_the_sr_back_with_the_original_identifiers(
    orthanc: Orthanc,
    chest: Path,
    serve_settings: ServeSettings,
    model_loader: ModelLoader,
    password_hash: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.readback import read_sr

    uploaded = orthanc.rest("/instances", chest.read_bytes(), raw=True)
    study_uid = orthanc.rest(f"/studies/{uploaded['ParentStudy']}")["MainDicomTags"][
        "StudyInstanceUID"
    ]
    routing = _routing(
        serve_settings.home.parent / "pacs-config", f"{{dicomweb: '{orthanc.dicomweb_url}'}}"
    )
    caplog.set_level(logging.DEBUG)
    for api in _api(
        serve_settings, model_loader, password_hash,
        pacs_dicomweb_url=orthanc.dicomweb_url, pacs_routing=routing,
    ):  # fmt: skip
        headers = api.as_role("admin")
        found = api.client.post(
            "/v1/pacs/studies/search", json={"patient_id": "9RG1"}, headers=headers
        )
        assert found.status_code == 200, found.text
        (study,) = found.json()["items"]
        assert (study["study_instance_uid"], study["patient_id"]) == (study_uid, "9RG1")
        pulled = api.client.post("/v1/pacs/pull", json={"study_uid": study_uid}, headers=headers)
        assert pulled.status_code == 200, pulled.text
        outcomes = [o for o in pulled.json()["items"] if o["status"] != "unrouted"]
        assert [(o["status"], o["rule"]) for o in outcomes] == [("sent", "chest")]
        # The viewer's way in: the image becomes a study, with the SR's boxes read back.
        opened = api.client.post("/v1/pacs/open", json={"study_uid": study_uid}, headers=headers)
        assert opened.status_code == 200, opened.text
        (image,) = opened.json()["items"]
        assert image["modality"] == "CR" and len(image["sr_findings"]) >= 1
        listed = api.client.get("/v1/studies", headers=headers).json()["items"]
        assert image["id"] in [study["id"] for study in listed]
        stored = api.services.store.get(image["sha256"])
        assert not [needle for needle in NEEDLES if needle.encode() in stored]  # de-identified
        status = api.client.get("/v1/pacs/status", headers=headers).json()
        assert (status["reachable"], status["rules"], status["dead_letters"]) == (
            True, ["chest"], 0,
        )  # fmt: skip
        with api.services.db.session(read_only=True) as session:
            records = [(r.action, r.outcome) for r in session.scalars(select(AuditRecord))]
        assert {("pacs.search", "ok"), ("pacs.pull", "ok"), ("pacs.open", "ok")} <= set(records)
    pacs = DicomWeb(orthanc.dicomweb_url)
    reports = [pacs.retrieve(ref) for ref in pacs.find_instances(study_uid, modality="SR")]
    ours = [sr for sr in reports if read_sr(sr).regions]
    assert ours and all(str(sr.PatientID) == "9RG1" for sr in ours)
    boxes = [r.box_px for r in read_sr(ours[-1]).regions]
    assert sorted(map(tuple, (f["box"] for f in image["sr_findings"]))) == sorted(boxes)
    assert all(str(sr.PatientName) == "CompressedSamples^RG1" for sr in ours)
    hits = [
        str(path)
        for path in serve_settings.home.parent.rglob("*")
        if path.is_file() and path.suffix not in {".yaml", ".db", ".db-wal", ".db-shm"}
        for needle in NEEDLES
        if needle.encode() in path.read_bytes()
    ]
    assert hits == []  # the sealed inbox/outbox and the pacs audit log hold no identifiers
    assert not [needle for needle in NEEDLES if needle in caplog.text]


def test_pacs_down_refusing_or_without_the_study_answers_json_errors(
    orthanc: Orthanc,
    chest: Path,
    serve_settings: ServeSettings,
    model_loader: ModelLoader,
    password_hash: str,
) -> None:
    routing = _routing(
        serve_settings.home.parent / "pacs-config", "{dicomweb: 'http://127.0.0.1:9/none'}"
    )
    cases = (
        (f"http://127.0.0.1:{free_port()}/dicom-web", 503, "cannot be reached"),
        (orthanc.url + "/not-dicom-web", 502, "refused (HTTP 404)"),
    )
    for api in _api(
        serve_settings, model_loader, password_hash,
        pacs_dicomweb_url=orthanc.dicomweb_url, pacs_routing=routing,
    ):  # fmt: skip
        headers = api.as_role("admin")
        configured = api.services.pacs
        for url, code, message in cases:  # the same service pointed at a PACS down, a wrong root
            settings = dataclasses.replace(configured.settings, pacs_dicomweb_url=url)
            api.services.pacs = PacsGateway(settings, api.services.store.keyring, b"salt")
            for answer in (
                api.client.post("/v1/pacs/studies/search", json={}, headers=headers),
                api.client.post("/v1/pacs/pull", json={"study_uid": "1.2.3"}, headers=headers),
            ):
                assert answer.status_code == code, answer.text
                assert message in answer.json()["error"]["message"]
        api.services.pacs = configured
        headers = api.as_role("admin")
        missing = api.client.post("/v1/pacs/pull", json={"study_uid": "1.2.3.4"}, headers=headers)
        assert missing.status_code == 404, missing.text
        bad = api.client.post("/v1/pacs/pull", json={"study_uid": "1.2;DROP"}, headers=headers)
        assert bad.status_code == 422
        # A destination that is down: the result dead-letters, is listed, and a retry that
        # fails again dead-letters it anew; nothing is lost.
        uploaded = orthanc.rest("/instances", chest.read_bytes(), raw=True)
        study_uid = orthanc.rest(f"/studies/{uploaded['ParentStudy']}")["MainDicomTags"][
            "StudyInstanceUID"
        ]
        pulled = api.client.post("/v1/pacs/pull", json={"study_uid": study_uid}, headers=headers)
        assert pulled.status_code == 200, pulled.text
        (failed,) = [o for o in pulled.json()["items"] if o["status"] == "dead-letter"]
        letters = api.client.get("/v1/pacs/dead-letters", headers=headers).json()["items"]
        assert [letter["sop"] for letter in letters] == [failed["sop"]]
        again = api.client.post(
            "/v1/pacs/dead-letters/retry", json={"dead_letter": failed["sop"]}, headers=headers
        )
        assert again.status_code == 200 and again.json()["status"] == "dead-letter"
        letters = api.client.get("/v1/pacs/dead-letters", headers=headers).json()["items"]
        assert [letter["sop"] for letter in letters] == [failed["sop"]]
        unknown = api.client.post(
            "/v1/pacs/dead-letters/retry", json={"dead_letter": "0" * 16}, headers=headers
        )
        assert unknown.status_code == 404

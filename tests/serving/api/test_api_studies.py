"""Studies over HTTP: upload, de-identified encrypted storage, viewer images, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from insightray.imaging import read_image
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import CHEST_DICOM, DICOM_DIR, Api, start_api


def test_upload_is_deidentified_and_encrypted_at_rest(api: Api) -> None:
    original = pydicom.dcmread(CHEST_DICOM)
    patient = str(original.PatientName).encode()
    assert patient and patient in CHEST_DICOM.read_bytes()
    study = api.upload(CHEST_DICOM)
    assert study["modality"] == "CR" and (study["width"], study["height"]) == (1024, 1024)
    assert study["pixel_spacing"] == [0.168, 0.168] and study["status"] == "stored"
    assert "cr_chest" not in str(study)  # the file name is not kept
    stored = api.services.store.get(study["sha256"])
    assert patient not in stored and str(original.PatientID).encode() not in stored
    assert pydicom.dcmread(__import__("io").BytesIO(stored)).PatientIdentityRemoved == "YES"
    on_disk = api.services.store.path(study["sha256"]).read_bytes()
    assert b"DICM" not in on_disk and patient not in on_disk  # AES-GCM ciphertext


def test_fetch_list_delete_and_ownership(api: Api) -> None:
    study = api.upload(CHEST_DICOM)
    mine = api.as_role("clinician")
    assert api.client.get(f"/v1/studies/{study['id']}", headers=mine).json()["id"] == study["id"]
    ids = [s["id"] for s in api.client.get("/v1/studies", headers=mine).json()["items"]]
    assert study["id"] in ids
    other = api.as_role("researcher")
    assert api.client.get(f"/v1/studies/{study['id']}", headers=other).status_code == 404
    assert study["id"] not in str(api.client.get("/v1/studies", headers=other).json())
    admin = api.as_role("admin")
    assert api.client.get(f"/v1/studies/{study['id']}", headers=admin).status_code == 200
    assert api.client.delete(f"/v1/studies/{study['id']}", headers=mine).status_code == 204
    assert api.client.get(f"/v1/studies/{study['id']}", headers=mine).status_code == 404
    assert not api.services.store.exists(study["sha256"])


def test_preview_and_pixels_for_the_viewer(api: Api) -> None:
    path = DICOM_DIR / "cr_chest_RG1_UNCI.dcm"  # MONOCHROME1, 16-bit, a stored window
    study = api.upload(path)
    headers = api.as_role("clinician")
    preview = api.client.get(f"/v1/studies/{study['id']}/preview.png", headers=headers)
    assert preview.headers["content-type"] == "image/png" and preview.content[:4] == b"\x89PNG"
    pixels = api.client.get(f"/v1/studies/{study['id']}/pixels", headers=headers)
    width, height = int(pixels.headers["X-Image-Width"]), int(pixels.headers["X-Image-Height"])
    assert (width, height) == (1841, 1955) == (study["width"], study["height"])
    low, high = float(pixels.headers["X-Value-Min"]), float(pixels.headers["X-Value-Max"])
    values = np.frombuffer(pixels.content, "<u2").reshape(height, width)
    restored = low + values.astype(np.float64) * (high - low) / 65535
    expected = read_image(path, output="modality").pixels  # as stored; the viewer inverts
    assert np.abs(restored - expected).max() <= (high - low) / 65535
    assert study["photometric"] == "MONOCHROME1"
    # The file's own window, unchanged: WC 15000 / WW 30000 (it once showed as L 12315).
    assert study["windows"][0] == {"name": "Window 1", "center": 15000.0, "width": 30000.0}
    assert study["windows"][-1]["name"] == "Full range"
    assert (study["body_part"], study["view"]) == ("CHEST", "PA")


@pytest.fixture
def small_upload_api(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    yield from start_api(serve_settings, model_loader, password_hash, max_upload_bytes=4096)


def test_bad_uploads_get_json_4xx_and_the_service_stays_up(
    small_upload_api: Api, tmp_path: Path
) -> None:
    api_ = small_upload_api
    headers = api_.as_role("clinician")
    client = api_.client

    def post(name: str, data: bytes) -> tuple[int, dict[str, str]]:
        response = client.post("/v1/studies", files={"file": (name, data)}, headers=headers)
        return response.status_code, response.json()["error"]

    status, error = post("big.dcm", b"\0" * 100_000)
    assert status == 413 and error["type"] == "PayloadTooLargeError"
    status, error = post("just-over.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
    assert status == 413, error
    status, error = post("notes.txt", b"hello, this is not an image at all")
    assert status == 415 and error["type"] == "UnsupportedFormatError"
    truncated = b"\0" * 128 + b"DICM" + CHEST_DICOM.read_bytes()[132:3000]
    status, error = post("broken.dcm", truncated)
    assert status == 422 and "Traceback" not in error["message"]
    status, error = post("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    assert status == 422
    status, error = post("empty.dcm", b"")
    assert status == 422
    no_file = client.post("/v1/studies", headers=headers)
    assert no_file.status_code == 422 and no_file.json()["error"]["type"] == "ValidationError"
    bad_json = client.post(
        "/v1/studies/x0/analyze",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert bad_json.status_code == 422
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/studies", headers=headers).json() == {"items": []}


@pytest.fixture
def pseudonym_api(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    yield from start_api(serve_settings, model_loader, password_hash, pseudonym_map=True)


def test_a_dicom_upload_is_parsed_once(pseudonym_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # De-identification, the pseudonym map, the windows and the pixels all need the header:
    # one parse serves them all (pydicom.dcmread is what every imaging reader calls).
    calls: list[object] = []
    real_dcmread = pydicom.dcmread

    def counting_dcmread(*args: object, **kwargs: object) -> pydicom.Dataset:
        calls.append(args[0])
        return real_dcmread(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pydicom, "dcmread", counting_dcmread)
    study = pseudonym_api.upload(DICOM_DIR / "cr_chest_RG1_UNCI.dcm")
    assert len(calls) == 1
    assert study["windows"][0]["width"] == 30000 and study["windows"][-1]["name"] == "Full range"
    calls.clear()
    pseudonym_api.upload(CHEST_DICOM)
    assert len(calls) == 1

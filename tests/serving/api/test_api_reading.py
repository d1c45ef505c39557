"""The reading room's API: measurements saved with a study, the tag browser by role,
duplicate uploads, the worklist's AI summary, window labels and pixel levels."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.serving.api.conftest import CHEST_DICOM, DICOM_DIR, Api


def test_a_length_is_saved_in_mm_and_reloaded(api: Api) -> None:
    study = api.upload(CHEST_DICOM)  # PixelSpacing 0.168 mm
    headers = api.as_role("clinician")
    url = f"/v1/studies/{study['id']}/measurements"
    pixels_for_50_mm = 50 / 0.168
    line = {"kind": "length", "points": [[100, 200], [100 + pixels_for_50_mm, 200]]}
    saved = api.client.post(url, json=line, headers=headers)
    assert saved.status_code == 201, saved.text
    assert saved.json()["value"]["unit"] == "mm"
    assert saved.json()["value"]["value"] == pytest.approx(50.0, abs=0.01)
    corner = {"kind": "angle", "points": [[300, 100], [100, 100], [100, 400]]}
    assert api.client.post(url, json=corner, headers=headers).json()["value"]["value"] == 90.0
    region = {
        "kind": "ellipse",
        "points": [[10, 10], [60, 40]],
        "stats": {"mean": 101.5, "sd": 3.25, "count": 1178, "unit": "value"},
    }
    assert api.client.post(url, json=region, headers=headers).status_code == 201
    listed = api.client.get(url, headers=headers).json()["items"]
    assert [m["kind"] for m in listed] == ["length", "angle", "ellipse"]
    assert listed[2]["value"]["mean"] == 101.5
    gone = api.client.delete(f"{url}/{listed[1]['id']}", headers=headers)
    assert gone.status_code == 204
    assert len(api.client.get(url, headers=headers).json()["items"]) == 2
    off = {"kind": "length", "points": [[0, 0], [5000, 0]]}
    assert api.client.post(url, json=off, headers=headers).status_code == 422
    wrong = {"kind": "length", "points": [[0, 0]]}
    assert api.client.post(url, json=wrong, headers=headers).status_code == 422
    # Someone else's study: 404, nothing saved.
    other = api.client.post(url, json=line, headers=api.as_role("researcher"))
    assert other.status_code == 404


def test_a_length_without_spacing_is_in_pixels(api: Api, tmp_path: Path) -> None:
    png = tmp_path / "plain.png"
    import cv2

    cv2.imwrite(str(png), np.full((64, 80), 120, np.uint8))
    study = api.upload(png)
    url = f"/v1/studies/{study['id']}/measurements"
    body = {"kind": "length", "points": [[0, 0], [30, 40]]}
    value = api.client.post(url, json=body, headers=api.as_role("clinician")).json()["value"]
    assert value == {"value": 50.0, "unit": "px", "warning": None}


def test_tags_withhold_identifying_values_from_roles_without_phi_rights(api: Api) -> None:
    study = api.upload(CHEST_DICOM, role="admin")
    stored = pydicom.dcmread(io.BytesIO(api.services.store.get(study["sha256"])))
    url = f"/v1/studies/{study['id']}/tags"
    admin = api.client.get(url, headers=api.as_role("admin")).json()
    rows = {row["keyword"]: row for row in admin["items"]}
    assert admin["phi_visible"] is True and admin["deidentified"] is True
    assert rows["PatientIdentityRemoved"]["value"] == "YES"
    assert rows["PatientID"]["phi"] and rows["PatientID"]["value"] == str(stored.PatientID)
    assert rows["Modality"]["value"] == "CR" and not rows["Modality"]["phi"]
    # A researcher sees the same rows with every identifying value withheld. (Admins see every
    # study; a researcher reads their own, so the researcher uploads the same file.)
    mine = api.upload(CHEST_DICOM, role="researcher")
    seen = api.client.get(f"/v1/studies/{mine['id']}/tags", headers=api.as_role("researcher"))
    body = seen.json()
    assert body["phi_visible"] is False
    hidden = {row["keyword"]: row["value"] for row in body["items"] if row["phi"]}
    assert hidden and set(hidden.values()) == {"(withheld: identifying)"}
    assert "StudyDate" in hidden or "PatientID" in hidden
    plain = {row["keyword"]: row["value"] for row in body["items"]}
    assert plain["Modality"] == "CR"


def test_the_same_file_twice_answers_the_existing_study(api: Api) -> None:
    first = api.upload(CHEST_DICOM)
    with CHEST_DICOM.open("rb") as handle:
        again = api.client.post(
            "/v1/studies", files={"file": ("x.dcm", handle)}, headers=api.as_role("clinician")
        )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["id"] == first["id"]
    items = api.client.get("/v1/studies", headers=api.as_role("clinician")).json()["items"]
    assert [s["id"] for s in items] == [first["id"]]


def test_the_worklist_says_what_the_ai_found(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(CHEST_DICOM)
    listed = api.client.get("/v1/studies", headers=headers).json()["items"][0]
    assert listed["triage"] == {"text": "", "severity": "none", "score": 0.0, "results": []}
    answer = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    count = len(answer["findings"])
    triage = api.client.get(f"/v1/studies/{study['id']}", headers=headers).json()["triage"]
    expected = f"{count} finding{'' if count == 1 else 's'}" if count else "no findings"
    assert triage["text"] == expected
    assert triage["severity"] == ("positive" if count else "negative")


def test_ct_window_labels_come_from_the_explanation(api: Api) -> None:
    study = api.upload(DICOM_DIR / "ct_brain_slice.dcm")
    names = [w["name"] for w in study["windows"]]
    assert names == ["WINDOW1", "WINDOW2", "Full range"]


def test_a_large_image_is_sent_as_a_level_then_tiles(api: Api, tmp_path: Path) -> None:
    import cv2

    big = tmp_path / "big.png"
    image = np.zeros((3000, 5000), np.uint16)
    image[1000:1100, 2000:2100] = 40000
    cv2.imwrite(str(big), image)
    study = api.upload(big)
    headers = api.as_role("clinician")
    url = f"/v1/studies/{study['id']}/pixels"
    level = api.client.get(url, headers=headers)
    width, height = int(level.headers["X-Image-Width"]), int(level.headers["X-Image-Height"])
    assert max(width, height) == 2048 and len(level.content) == width * height * 2
    assert (level.headers["X-Full-Width"], level.headers["X-Full-Height"]) == ("5000", "3000")
    tile = api.client.get(url, params={"region": "1950,950,200,200"}, headers=headers)
    assert tile.headers["X-Region"] == "1950,950,200,200"
    values = np.frombuffer(tile.content, "<u2").reshape(200, 200)
    assert values[50:150, 50:150].min() == 65535 and values[:50].max() == 0
    outside = api.client.get(url, params={"region": "6000,0,10,10"}, headers=headers)
    assert outside.status_code == 422


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_an_81_megapixel_blank_png_stays_small_in_memory(tmp_path: Path) -> None:
    """The level for the viewer of a 9,000 x 9,000 blank PNG: 8 MiB out, and the process
    grows by well under a gigabyte (it reached 1.7 GB before)."""
    import cv2

    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.zeros((9000, 9000), np.uint8))
    code = f"""
import resource
from insightray.imaging import read_image
from insightray.serving.images import pixel_level
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
payload = pixel_level(read_image({str(path)!r}, output="modality"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(payload.width, payload.height, len(payload.data), (after - before) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    width, height, size, grown_mib = (int(v) for v in out.stdout.split())
    assert (width, height) == (2048, 2048) and size == 2048 * 2048 * 2
    assert grown_mib < 800, f"the process grew by {grown_mib} MiB (2,009 MiB before levels)"


def test_heatmap_colours_at_most_the_hottest_fifth() -> None:
    from insightray.serving.images import heat_alpha

    diffuse = np.random.default_rng(0).uniform(0.26, 0.99, (450, 170)).astype(np.float32)
    assert (heat_alpha(diffuse) > 0).mean() <= 0.2
    focal = np.zeros((64, 64), np.float32)
    focal[30:34, 30:34] = 1.0
    assert (heat_alpha(focal) > 0).sum() == 16
    assert not heat_alpha(np.full((8, 8), 0.3, np.float32)).any()

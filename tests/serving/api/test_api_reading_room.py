"""The reading room's API, second part: multi-frame pixels frame by frame, the priors of a
patient (same pseudonym, earlier study date) and the measurements as a DICOM SR."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import examples
from pydicom.uid import generate_uid
from sqlalchemy import select

from insightray.imaging import read_image
from insightray.imaging.upload import viewer_values
from insightray.serving.storage.db.models import Study
from tests.pacs.helpers import dciodvfy_errors
from tests.serving.api.conftest import CHEST_DICOM, DICOM_DIR, Api

#: A real 30-frame ultrasound cine loop (JPEG baseline, YBR) bundled with pydicom.
CINE = Path(examples.get_path("ybr_color"))


def pixels_of(answer: object) -> np.ndarray:
    """The values an answer of ``/pixels`` stands for."""
    headers = answer.headers  # type: ignore[attr-defined]
    codes = np.frombuffer(answer.content, "<u2").astype(np.float64)  # type: ignore[attr-defined]
    low, high = float(headers["X-Value-Min"]), float(headers["X-Value-Max"])
    shape = (int(headers["X-Image-Height"]), int(headers["X-Image-Width"]))
    return (low + codes * (high - low) / 65535).reshape(shape)


def test_a_multi_frame_study_is_served_frame_by_frame(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(CINE)
    assert study["frames"] == 30
    stored = api.services.store.get(study["sha256"])
    url = f"/v1/studies/{study['id']}/pixels"
    seen = []
    for frame in (0, 7, 29):
        answer = api.client.get(url, params={"frame": frame}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert (answer.headers["X-Frame"], answer.headers["X-Frames"]) == (str(frame), "30")
        expected = viewer_values(read_image(stored, frame=frame, output="modality"))
        step = (float(answer.headers["X-Value-Max"]) - float(answer.headers["X-Value-Min"])) / 65535
        assert np.abs(pixels_of(answer) - expected).max() <= step
        seen.append(pixels_of(answer))
    assert np.abs(seen[0] - seen[2]).mean() > 1.0, "frames 1 and 30 of the loop differ"
    first = api.client.get(url, headers=headers)
    assert first.headers["X-Frame"] == "0" and np.array_equal(pixels_of(first), seen[0])
    beyond = api.client.get(url, params={"frame": 30}, headers=headers)
    assert beyond.status_code == 422
    assert "30 frame" in beyond.json()["error"]["message"]
    single = api.upload(CHEST_DICOM)
    assert single["frames"] == 1
    wrong = api.client.get(f"/v1/studies/{single['id']}/pixels?frame=1", headers=headers)
    assert wrong.status_code == 422


def same_patient(source: Path, target: Path, patient_id: str, study_date: str) -> Path:
    """A real image re-filed as a study of ``patient_id`` on ``study_date`` (new UIDs)."""
    ds = pydicom.dcmread(source)
    ds.PatientID, ds.PatientName, ds.StudyDate = patient_id, "Prior^Test", study_date
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(target)
    return target


def test_priors_are_the_same_patients_earlier_studies_without_dates(
    api: Api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    headers = api.as_role("clinician")
    older = api.upload(same_patient(CHEST_DICOM, tmp_path / "a.dcm", "PT-PRIOR-1", "20230105"))
    newer = api.upload(same_patient(CHEST_DICOM, tmp_path / "b.dcm", "PT-PRIOR-1", "20240110"))
    oldest = api.upload(
        same_patient(DICOM_DIR / "cr_tibia_RG3_UNCI.dcm", tmp_path / "c.dcm", "PT-PRIOR-1",
                     "20200101")
    )  # fmt: skip
    api.upload(same_patient(CHEST_DICOM, tmp_path / "d.dcm", "PT-OTHER-2", "20220101"))
    answer = api.client.get(f"/v1/studies/{newer['id']}/priors", headers=headers)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [(p["id"], p["days_before"]) for p in items] == [
        (older["id"], 370), (oldest["id"], 1470)
    ]  # fmt: skip
    assert api.client.get(f"/v1/studies/{oldest['id']}/priors", headers=headers).json() == {
        "items": []
    }
    text = answer.text + caplog.text
    for secret in ("2023", "20230105", "PT-PRIOR-1", "Prior^Test"):
        assert secret not in text
    # Someone else's study: 404, no priors listed.
    other = api.client.get(f"/v1/studies/{newer['id']}/priors", headers=api.as_role("researcher"))
    assert other.status_code == 404
    # The database keeps the pseudonym and the sealed date, never the date or the ID.
    with api.services.db.session(read_only=True) as session:
        metas = [str(meta) for meta in session.scalars(select(Study.meta))]
    assert metas and not any("2023" in m or "PT-PRIOR" in m for m in metas)


pytest.importorskip("highdicom")


def test_measurements_export_as_a_dciodvfy_clean_sr_that_reads_back(
    api: Api, tmp_path: Path
) -> None:
    import highdicom as hd

    headers = api.as_role("clinician")
    study = api.upload(CHEST_DICOM)  # PixelSpacing 0.168 mm
    url = f"/v1/studies/{study['id']}/measurements"
    assert api.client.get(f"{url}/sr", headers=headers).status_code == 422  # nothing yet
    line = {"kind": "length", "points": [[100, 200], [100 + 50 / 0.168, 200]]}
    corner = {"kind": "angle", "points": [[300, 100], [100, 100], [100, 400]]}
    stats = {"mean": 101.5, "sd": 3.25, "min": 80, "max": 120, "count": 1178, "unit": "value",
             "area": 1234.5, "area_unit": "mm²"}  # fmt: skip
    region = {"kind": "ellipse", "points": [[10, 10], [60, 40]], "stats": stats}
    box = {"kind": "rectangle", "points": [[20, 30], [80, 90]], "stats": stats}
    for body in (line, corner, region, box):
        assert api.client.post(url, json=body, headers=headers).status_code == 201
    answer = api.client.get(f"{url}/sr", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom"
    (tmp_path / "measurements.dcm").write_bytes(answer.content)
    assert dciodvfy_errors(tmp_path / "measurements.dcm") == []

    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(io.BytesIO(answer.content)))
    stored = pydicom.dcmread(io.BytesIO(api.services.store.get(study["sha256"])))
    assert sr.StudyInstanceUID == stored.StudyInstanceUID  # the de-identified study's
    groups = sr.content.get_planar_roi_measurement_groups()
    found = [
        {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        for group in groups
    ]
    assert found[0]["Length"][1] == "mm"
    assert found[0]["Length"][0] == pytest.approx(50.0, abs=0.01)
    assert found[1]["Angle"] == (pytest.approx(90.0), "deg")
    for values in found[2:]:
        assert values["Area"] == (pytest.approx(1234.5), "mm2")
        assert values["Mean"][0] == pytest.approx(101.5)
        assert values["Standard Deviation"][0] == pytest.approx(3.25)
    shapes = [group.roi.GraphicType for group in groups]
    assert shapes == ["POLYLINE", "POLYLINE", "ELLIPSE", "POLYLINE"]
    assert groups[0].roi.GraphicData == pytest.approx([100, 200, 100 + 50 / 0.168, 200])


def test_a_png_study_has_no_measurement_sr(api: Api, tmp_path: Path) -> None:
    import cv2

    png = tmp_path / "plain.png"
    cv2.imwrite(str(png), np.full((64, 80), 120, np.uint8))
    study = api.upload(png)
    url = f"/v1/studies/{study['id']}/measurements"
    line = {"kind": "length", "points": [[0, 0], [30, 40]]}
    assert api.client.post(url, json=line, headers=api.as_role("clinician")).status_code == 201
    assert api.client.get(f"{url}/sr", headers=api.as_role("clinician")).status_code == 415


def pydicom_display(ds: pydicom.Dataset, bits: int) -> np.ndarray:
    """The 8-bit display of pydicom's own grayscale pipeline: modality LUT, then the file's
    VOI LUT or window (``apply_voi_lut``), MONOCHROME1 inverted."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    shown = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds) / (2**bits - 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        shown = 1.0 - shown
    return np.rint(np.clip(shown, 0, 1) * 255)


def preview_of(api: Api, study: dict[str, object]) -> np.ndarray:
    import cv2

    answer = api.client.get(
        f"/v1/studies/{study['id']}/preview.png", headers=api.as_role("clinician")
    )
    assert answer.status_code == 200
    return cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_UNCHANGED).astype(float)


def test_the_cr_chest_opens_at_the_files_own_window(api: Api) -> None:
    """The default window is the file's VOI (as pydicom applies it), not a guess: the
    service's preview equals pydicom's display, and the viewer's first preset is that window."""
    path = DICOM_DIR / "cr_chest_RG1_UNCI.dcm"  # MONOCHROME1, WC 15000 / WW 30000
    study = api.upload(path)
    ds = pydicom.dcmread(path)
    assert np.abs(preview_of(api, study) - pydicom_display(ds, ds.BitsStored)).max() <= 1
    assert study["windows"][0] == {"name": "Window 1", "center": 15000.0, "width": 30000.0}


def test_a_voi_lut_is_the_default_before_a_window(api: Api, tmp_path: Path) -> None:
    """A file with a VOI LUT Sequence: the preview is the LUT's curve, and the viewer's first
    preset is the linear window of the LUT's range (named from LUTExplanation)."""
    ds = pydicom.dcmread(DICOM_DIR / "cr_tibia_RG3_UNCI.dcm")  # 10 bits, WC 550 / WW 1024
    lut = pydicom.Dataset()
    first, count = 200, 600  # a gamma curve over inputs 200..799, 12-bit output
    curve = np.rint(4095 * np.linspace(0, 1, count) ** 0.6).astype(np.uint16)
    lut.add_new("LUTDescriptor", "US", [count, first, 12])
    lut.LUTExplanation = "GAMMA 0.6"
    lut.add_new("LUTData", "US", curve.tolist())
    ds.VOILUTSequence = pydicom.Sequence([lut])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "lut.dcm")
    study = api.upload(tmp_path / "lut.dcm")
    assert np.abs(preview_of(api, study) - pydicom_display(ds, 12)).max() <= 1
    default = study["windows"][0]
    assert default["name"] == "GAMMA 0.6"
    assert (default["center"], default["width"]) == (pytest.approx(first + count / 2), count)
    assert study["windows"][1]["center"] == 550.0  # the stored window stays a preset


def test_a_measurement_on_a_frame_keeps_its_frame_into_the_sr(api: Api, tmp_path: Path) -> None:
    headers = api.as_role("clinician")
    study = api.upload(CINE)
    url = f"/v1/studies/{study['id']}/measurements"
    line = {"kind": "length", "points": [[40, 50], [200, 50]], "frame": 12}
    saved = api.client.post(url, json=line, headers=headers)
    assert saved.status_code == 201, saved.text
    assert saved.json()["frame"] == 12 and saved.json()["value"]["unit"] == "px"
    assert api.client.post(url, json={**line, "frame": 30}, headers=headers).status_code == 422
    assert api.client.get(url, headers=headers).json()["items"][0]["frame"] == 12
    answer = api.client.get(f"{url}/sr", headers=headers)
    assert answer.status_code == 200, answer.text
    (tmp_path / "cine-sr.dcm").write_bytes(answer.content)
    assert dciodvfy_errors(tmp_path / "cine-sr.dcm") == []
    sr = pydicom.dcmread(io.BytesIO(answer.content))
    numbers = [e.value for e in sr.iterall() if e.keyword == "ReferencedFrameNumber"]
    assert numbers and all(int(n) == 13 for n in numbers)  # DICOM counts frames from 1
    # One frame: no frame number is kept.
    single = api.upload(CHEST_DICOM)
    one = {"kind": "length", "points": [[0, 0], [10, 0]], "frame": 0}
    kept = api.client.post(f"/v1/studies/{single['id']}/measurements", json=one, headers=headers)
    assert kept.status_code == 201 and kept.json()["frame"] is None

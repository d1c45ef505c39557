"""DICOM SR out: ``detect --sr`` and ``classify fracture --sr`` on real DICOM, dciodvfy-clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from insightray.errors import ConfigError, InputError
from tests.pacs.helpers import assert_same_boxes, dciodvfy_errors
from tests.test_cli_detect import cli

pytest.importorskip("highdicom")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_detect_sr_regions_are_the_json_boxes(chest: Path, tmp_path: Path) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.models import load_card
    from insightray.models.catalog import default_model, resolve_card
    from insightray.pacs.readback import read_sr

    code, stdout, stderr = cli("detect", str(chest), "--json", "--sr", str(tmp_path))
    assert code == 0, stderr
    record = json.loads(stdout)
    source = read_dataset(chest, header_only=True)
    written = tmp_path / f"{source.SOPInstanceUID}.sr.dcm"
    assert sorted(tmp_path.iterdir()) == [written]
    assert dciodvfy_errors(written) == []

    report = read_sr(written)
    detections = record["detections"]
    assert detections, "the bundled detector finds boxes on this chest film"
    assert_same_boxes([d["box"] for d in detections], [r.box_px for r in report.regions])
    assert [r.label for r in report.regions] == [d["class_name"] for d in detections]
    assert [r.score for r in report.regions] == pytest.approx(
        [d["score"] for d in detections], abs=1e-4
    )
    assert {r.finding for r in report.regions} == {("SCT", "56717001", "Tuberculosis")}
    assert {r.source_sop_instance_uid for r in report.regions} == {source.SOPInstanceUID}
    assert report.referenced_sop_instance_uids == (source.SOPInstanceUID,)
    card = load_card(resolve_card(None, default=default_model("detection")))
    assert report.algorithms == ((card.name, card.version, card.weights_sha256),)
    assert (record["model"]["name"], record["model"]["version"]) == (card.name, card.version)


def test_fracture_sr_is_one_image_level_finding(shared_data: Path, tmp_path: Path) -> None:
    from insightray.pacs.readback import read_sr

    tibia = shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm"
    code, stdout, stderr = cli("classify", "fracture", str(tibia), "--json", "--sr", str(tmp_path))
    assert code == 0, stderr
    record = json.loads(stdout)
    (written,) = tmp_path.iterdir()
    assert dciodvfy_errors(written) == []
    report = read_sr(written)
    assert report.regions == ()
    (finding,) = report.findings
    assert finding.label == "fractured"
    assert finding.probability == pytest.approx(record["probability"], abs=1e-4)
    assert finding.present == (record["label"] == "fractured")
    assert finding.evaluation == ("Present" if finding.present else "Absent")  # read, not assumed


def test_sr_of_a_png_is_a_clear_per_file_error(tmp_path: Path) -> None:
    png = tmp_path / "film.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(png)
    code, _, stderr = cli("detect", str(png), "--sr", str(tmp_path / "sr"))
    assert code == 1
    assert "an SR can only be written for a DICOM image" in stderr
    assert not (tmp_path / "sr").exists()


def test_build_sr_refuses_headers_without_uids_and_empty_results(chest: Path) -> None:
    from insightray.engine import DetectionResult
    from insightray.imaging.dicom import read_dataset
    from insightray.models import load_card
    from insightray.models.catalog import default_model, resolve_card
    from insightray.pacs.sr import build_sr

    card = load_card(resolve_card(None, default=default_model("detection")))
    header = read_dataset(chest, header_only=True)
    result = DetectionResult("x", (), (10, 10), None, card.name, card.version)
    with pytest.raises(ConfigError, match="no result to report"):
        build_sr(header, detection=None)
    del header.SOPInstanceUID
    with pytest.raises(InputError, match="no SOPInstanceUID"):
        build_sr(header, detection=(result, card))


def test_read_sr_refuses_an_image(chest: Path) -> None:
    from insightray.pacs.readback import read_sr

    with pytest.raises(InputError, match="not a DICOM Structured Report"):
        read_sr(chest)


def test_a_detector_that_found_nothing_still_reports(chest: Path, tmp_path: Path) -> None:
    from insightray.engine import DetectionResult
    from insightray.models import load_card
    from insightray.models.catalog import default_model, resolve_card
    from insightray.pacs.readback import read_sr
    from insightray.pacs.sr import NO_FINDINGS, write_sr

    card = load_card(resolve_card(None, default=default_model("detection")))
    empty = DetectionResult(str(chest), (), (1955, 1841), None, card.name, card.version)
    written = write_sr(chest, tmp_path, detection=(empty, card))
    assert dciodvfy_errors(written) == []
    report = read_sr(written)
    assert report.regions == ()
    (finding,) = report.findings
    assert (finding.label, finding.present) == (NO_FINDINGS, False)

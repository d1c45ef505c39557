"""Boxes as a Grayscale Softcopy Presentation State: `detect --gsps`, dciodvfy-clean, PACS-ready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pacs.helpers import assert_same_boxes, dciodvfy_errors
from tests.pacs.orthanc import Orthanc
from tests.test_cli_detect import cli

pytest.importorskip("highdicom")
pytestmark = pytest.mark.usefixtures("one_thread")

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"


def test_detect_gsps_draws_the_json_boxes_on_the_source_image(
    chest: Path, tmp_path: Path, orthanc: Orthanc
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.gsps import GSPS_LAYER, read_gsps_boxes

    code, stdout, stderr = cli("detect", str(chest), "--json", "--gsps", str(tmp_path))
    assert code == 0, stderr
    boxes = [d["box"] for d in json.loads(stdout)["detections"]]
    assert boxes, "the bundled detector finds boxes on this chest film"
    source = read_dataset(chest, header_only=True)
    written = tmp_path / f"{source.SOPInstanceUID}.pr.dcm"
    assert sorted(tmp_path.iterdir()) == [written]
    assert dciodvfy_errors(written) == []
    gsps = read_dataset(written)
    assert gsps.SOPClassUID == GSPS_CLASS
    assert_same_boxes(boxes, read_gsps_boxes(gsps))
    (annotation,) = gsps.GraphicAnnotationSequence
    assert annotation.GraphicLayer == GSPS_LAYER
    assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert gsps.StudyInstanceUID == source.StudyInstanceUID  # filed in the source's study
    # A PACS takes it and gives back the same boxes.
    pacs = DicomWeb(orthanc.dicomweb_url)
    pacs.store([read_dataset(chest), gsps])
    (ref,) = [r for r in pacs.find_instances(source.StudyInstanceUID, modality="PR")
              if r.sop_instance_uid == gsps.SOPInstanceUID]  # fmt: skip
    assert_same_boxes(boxes, read_gsps_boxes(pacs.retrieve(ref)))


def test_a_negative_result_says_so_and_a_png_is_refused(chest: Path, tmp_path: Path) -> None:
    from insightray.engine import DetectionResult, load_predictor
    from insightray.errors import UnsupportedFormatError
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.gsps import build_gsps, read_gsps_boxes, write_gsps

    card = load_predictor(task="detection").card
    empty = DetectionResult("x", (), (1, 1), None, card.name, card.version)
    gsps = build_gsps(read_dataset(chest, header_only=True), empty, card)
    assert read_gsps_boxes(gsps) == []
    texts = gsps.GraphicAnnotationSequence[0].TextObjectSequence
    assert [t.UnformattedTextValue for t in texts] == ["no findings"]
    gsps.save_as(tmp_path / "empty.pr.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "empty.pr.dcm") == []
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(UnsupportedFormatError, match="presentation state"):
        write_gsps(png, tmp_path / "out", empty, card)

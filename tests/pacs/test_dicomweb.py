"""DICOMweb against a real Orthanc: the source image and its SR stored, found and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from insightray.errors import ServiceError, ServiceUnavailableError
from tests.pacs.helpers import assert_same_boxes, dciodvfy_errors
from tests.pacs.orthanc import Orthanc, free_port

pytest.importorskip("dicomweb_client")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_sr_round_trip_through_orthanc(orthanc: Orthanc, chest: Path, tmp_path: Path) -> None:
    from insightray.engine import load_predictor
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.readback import read_sr
    from insightray.pacs.sr import write_sr

    predictor = load_predictor(task="detection")
    result = predictor.predict_paths([str(chest)])[0]
    written = write_sr(chest, tmp_path, detection=(result, predictor.card))
    source = read_dataset(chest)
    sr = read_dataset(written)

    pacs = DicomWeb(orthanc.dicomweb_url)
    assert pacs.store([source]) == [source.SOPInstanceUID]
    assert pacs.store([sr]) == [sr.SOPInstanceUID]

    study = str(source.StudyInstanceUID)
    # Other tests store SRs into the same study: ours is the one with its SOP Instance UID.
    srs = pacs.find_instances(study, modality="SR")
    (found,) = [ref for ref in srs if ref.sop_instance_uid == sr.SOPInstanceUID]
    assert {ref.modality for ref in srs} == {"SR"}
    assert {ref.modality for ref in pacs.find_instances(study)} == {"CR", "SR"}
    back = pacs.retrieve(found)
    back.save_as(tmp_path / "back.dcm", enforce_file_format=True)
    assert dciodvfy_errors(tmp_path / "back.dcm") == []
    report = read_sr(back)
    assert_same_boxes([d.box_px for d in result.detections], [r.box_px for r in report.regions])
    assert report.referenced_sop_instance_uids == (source.SOPInstanceUID,)


def test_a_pacs_that_is_down_is_a_clear_error() -> None:
    from insightray.pacs.dicomweb import DicomWeb

    pacs = DicomWeb(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=5)
    with pytest.raises(ServiceUnavailableError, match="cannot be reached"):
        pacs.find_instances("1.2.3")


def test_a_wrong_dicomweb_root_is_a_refusal(orthanc: Orthanc) -> None:
    from insightray.pacs.dicomweb import DicomWeb

    with pytest.raises(ServiceError, match=r"refused \(HTTP 404\)"):
        DicomWeb(orthanc.url + "/not-dicom-web").find_instances("1.2.3")

"""The C-STORE listener end to end: Orthanc pushes a study in, the SR goes back into Orthanc."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from insightray.errors import ServiceUnavailableError
from tests.pacs.helpers import assert_same_boxes
from tests.pacs.orthanc import Orthanc, free_port

if TYPE_CHECKING:
    from insightray.pacs.vault import Vault

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.usefixtures("one_thread")


def _routing(
    destination: dict[str, object], dead_letter: Path, attempts: int = 2, gsps: bool = False
) -> object:
    from insightray.pacs.routing import routing_from_dict

    return routing_from_dict(
        {
            "rules": [
                {
                    "name": "chest",
                    "match": {"modality": ["CR", "DX"], "body_part": ["CHEST"]},
                    "task": "detection",
                    "destination": destination,
                    "presentation_state": gsps,
                }
            ],
            "retry": {"attempts": attempts, "backoff_s": 0.5},
            "dead_letter": str(dead_letter),
        }
    )


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def listener_for(tmp_path: Path, waits: list[float], vault: Vault) -> Iterator[object]:
    from insightray.pacs.listener import Listener
    from insightray.pacs.pipeline import Analyst

    started: list[Listener] = []

    def make(destination: dict[str, object], allowed: list[str], gsps: bool = False) -> Listener:
        analyst = Analyst(
            _routing(destination, tmp_path / "dead", gsps=gsps),  # type: ignore[arg-type]
            vault,
            outbox=tmp_path / "outbox",
            audit_log=tmp_path / "audit.jsonl",
            sleep=waits.append,
        )
        listener = Listener(analyst, vault, port=free_port(), allowed=allowed)
        listener.start()
        started.append(listener)
        return listener

    yield make
    for listener in started:
        listener.stop()


def _identifiers(chest: Path) -> dict[str, str]:
    """The chest image's patient and study identifiers (patient data in the test file)."""
    from insightray.imaging.dicom import read_dataset

    header = read_dataset(chest, header_only=True)
    keywords = ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID")
    return {keyword: str(header[keyword].value) for keyword in keywords}


def _files_containing(folder: Path, needles: list[str]) -> list[str]:
    """Every file under ``folder`` whose raw bytes contain one of ``needles``."""
    return [
        f"{path.relative_to(folder)}: {needle}"
        for path in folder.rglob("*")
        if path.is_file() and not path.name.endswith(".pem")
        for needle in needles
        if needle.encode() in path.read_bytes()
    ]


def test_orthanc_pushes_a_study_and_gets_the_sr_back(
    orthanc: Orthanc,
    chest: Path,
    listener_for: object,
    tmp_path: Path,
    vault: Vault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from insightray.engine import load_predictor
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.readback import read_sr

    listener = listener_for({"dicomweb": orthanc.dicomweb_url}, ["ORTHANC"], gsps=True)  # type: ignore[operator]
    modality = {"AET": "INSIGHTRAY", "Host": "127.0.0.1", "Port": listener.address[1]}
    orthanc.rest("/modalities/insightray", modality, method="PUT")
    uploaded = orthanc.rest("/instances", chest.read_bytes(), raw=True)
    study_uid = _identifiers(chest)["StudyInstanceUID"]
    pacs = DicomWeb(orthanc.dicomweb_url)
    states_before = {r.sop_instance_uid for r in pacs.find_instances(study_uid, modality="PR")}
    caplog.set_level(logging.DEBUG)
    orthanc.rest(
        "/modalities/insightray/store",
        {"Resources": [uploaded["ParentStudy"]], "Synchronous": True},  # type: ignore[index]
    )
    assert listener.wait_idle(120)
    original = _identifiers(chest)
    # Nothing identifying in clear on disk (inbox, outbox, audit) nor in any log record.
    assert _files_containing(tmp_path, ["CompressedSamples", *original.values()]) == []
    assert not [v for v in ["CompressedSamples", *original.values()] if v in caplog.text]
    # The study may hold SRs from earlier tests: they arrive too and no rule takes them.
    (outcome,) = [o for o in listener.outcomes if o.status != "unrouted"]
    assert (outcome.status, outcome.rule, outcome.attempts) == ("sent", "chest", 1)

    study = orthanc.rest(f"/studies/{uploaded['ParentStudy']}")["MainDicomTags"]  # type: ignore[index]
    refs = pacs.find_instances(study["StudyInstanceUID"], modality="SR")
    reports = [read_sr(pacs.retrieve(ref)) for ref in refs]
    sent = read_dataset(vault.read(Path(str(outcome.sr_path)))).SOPInstanceUID
    (report,) = [r for r in reports if r.sop_instance_uid == sent]
    # The SR went back with the source's original identifiers, so Orthanc files it beside it.
    (stored,) = [pacs.retrieve(ref) for ref in refs if ref.sop_instance_uid == sent]
    assert {k: str(stored[k].value) for k in ("PatientName", "PatientID", "StudyInstanceUID")} == {
        k: original[k] for k in ("PatientName", "PatientID", "StudyInstanceUID")
    }
    assert {r.source_sop_instance_uid for r in report.regions} == {original["SOPInstanceUID"]}
    # The rule asked for a presentation state too: same boxes, on the original image.
    from insightray.pacs.gsps import read_gsps_boxes

    new = [r for r in pacs.find_instances(study_uid, modality="PR")
           if r.sop_instance_uid not in states_before]  # fmt: skip
    (state,) = [pacs.retrieve(ref) for ref in new]
    assert str(state.PatientID) == original["PatientID"]
    referenced = state.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    assert referenced.ReferencedSOPInstanceUID == original["SOPInstanceUID"]
    assert_same_boxes([r.box_px for r in report.regions], read_gsps_boxes(state))
    # ...while the copy kept in the outbox is the de-identified one.
    kept = read_dataset(vault.read(Path(str(outcome.sr_path))))
    assert kept.StudyInstanceUID != original["StudyInstanceUID"] and not str(kept.PatientID)
    expected = load_predictor(task="detection").predict_paths([str(chest)])[0]
    assert_same_boxes([d.box_px for d in expected.detections], [r.box_px for r in report.regions])
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["status"] for line in audit if line["status"] != "unrouted"] == ["sent"]
    assert "1.3.6" not in (tmp_path / "audit.jsonl").read_text()  # UIDs are hashed
    unrouted = sum(o.status == "unrouted" for o in listener.outcomes)
    assert len(list(listener.inbox.iterdir())) == unrouted  # what was sent left the inbox


def test_an_ae_title_off_the_allow_list_is_refused(listener_for: object, chest: Path) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import send_cstore

    listener = listener_for({"dicomweb": "http://127.0.0.1:9/none"}, ["ORTHANC"])  # type: ignore[operator]
    with pytest.raises(ServiceUnavailableError, match="association was refused"):
        send_cstore(
            [read_dataset(chest)],
            host="127.0.0.1",
            port=listener.address[1],
            called_aet="INSIGHTRAY",
            calling_aet="STRANGER",
        )
    assert listener.received == 0
    assert not any(listener.inbox.iterdir())


def test_failures_retry_then_dead_letter_and_non_images_stay_unrouted(
    listener_for: object, chest: Path, tmp_path: Path, waits: list[float]
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import send_cstore
    from insightray.pacs.sr import write_sr

    down = {"cstore": {"host": "127.0.0.1", "port": free_port(), "aet": "NOBODY"}}
    listener = listener_for(down, ["MODALITY"])  # type: ignore[operator]
    image = read_dataset(chest)
    no_pixels = read_dataset(chest)
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = no_pixels.SOPInstanceUID + ".9"
    from insightray.engine import DetectionResult, load_predictor

    card = load_predictor(task="detection").card
    empty = DetectionResult("x", (), (1, 1), None, card.name, card.version)
    sr = read_dataset(write_sr(chest, tmp_path / "sr", detection=(empty, card)))
    stored = send_cstore(
        [image, no_pixels, sr],
        host="127.0.0.1",
        port=listener.address[1],
        called_aet="INSIGHTRAY",
        calling_aet="MODALITY",
    )
    assert stored == 3
    assert listener.wait_idle(120)
    by_status = sorted((o.status, o.attempts) for o in listener.outcomes)
    assert by_status == [("dead-letter", 0), ("dead-letter", 2), ("unrouted", 0)]
    assert len(list(listener.inbox.iterdir())) == 1  # only the unrouted SR stays in the inbox
    assert waits == [0.5]  # one back-off between the two attempts
    unsent = next(o for o in listener.outcomes if o.attempts == 2)
    assert "association was" in unsent.reason
    folder = tmp_path / "dead" / unsent.sop
    assert {p.suffix for p in folder.iterdir()} == {".ir", ".json"}  # still sealed
    assert len(list(folder.glob("*.sr.ir"))) == 1
    pixel_less = next(o for o in listener.outcomes if o.status == "dead-letter" and not o.attempts)
    assert "pixel" in pixel_less.reason.lower()
    assert json.loads((tmp_path / "dead" / pixel_less.sop / "reason.json").read_text())["reason"]

"""Arrivals de-identified and sealed on ingest; identifiers restored only on the way out."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from insightray.errors import TamperedDataError
from tests.pacs.helpers import dciodvfy_errors
from tests.pacs.orthanc import free_port

if TYPE_CHECKING:
    from insightray.pacs.vault import Vault

pytest.importorskip("pynetdicom")

NEEDLES = ("CompressedSamples", "9RG1", "1.3.6.1.4.1.5962")  # name, ID, UID root of the file


def _raw_hits(folder: Path) -> list[str]:
    return [
        f"{path.name}: {needle}"
        for path in folder.rglob("*")
        if path.is_file()
        for needle in NEEDLES
        if needle.encode() in path.read_bytes()
    ]


def test_the_raw_check_finds_a_plain_dicom_file(chest: Path, tmp_path: Path) -> None:
    shutil.copy(chest, tmp_path / "plain.dcm")
    assert len(_raw_hits(tmp_path)) == len(NEEDLES)


def test_a_cstore_arrival_lies_on_disk_de_identified_and_encrypted(
    chest: Path, tmp_path: Path, vault: Vault
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import send_cstore
    from insightray.pacs.listener import Listener

    listener = Listener(None, vault, port=free_port(), allowed=["MODALITY"])
    listener.start()
    try:
        sent = send_cstore(
            [read_dataset(chest)], host="127.0.0.1", port=listener.address[1],
            called_aet="INSIGHTRAY", calling_aet="MODALITY",
        )  # fmt: skip
        assert sent == 1 and listener.wait_idle(30)
    finally:
        listener.stop()
    (stored,) = vault.inbox.iterdir()
    assert _raw_hits(tmp_path) == []
    assert b"DICM" not in stored.read_bytes()  # encrypted, not merely stripped
    arrival = vault.open(stored)
    header = arrival.header()
    assert (str(header.PatientName), str(header.PatientID)) == ("", "")
    assert header.PatientIdentityRemoved == "YES"
    assert not any(needle.encode() in arrival.image for needle in NEEDLES)
    assert str(arrival.identity.PatientID) == "9RG1"  # kept, sealed, for the way back
    assert "PixelData" not in arrival.identity


def test_an_sr_of_the_arrival_gets_the_original_identifiers_back(
    chest: Path, tmp_path: Path, vault: Vault
) -> None:
    from insightray.engine import load_predictor
    from insightray.imaging import read_image
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.readback import read_sr
    from insightray.pacs.sr import build_sr

    original = read_dataset(chest, header_only=True)
    arrival = vault.open(vault.admit(read_dataset(chest)))
    predictor = load_predictor(task="detection")
    result = predictor.predict([read_image(arrival.image)])[0]
    sr = build_sr(arrival.header(), detection=(result, predictor.card))
    assert sr.StudyInstanceUID != original.StudyInstanceUID
    restored = vault.restore(sr, arrival)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID",
                    "AccessionNumber", "StudyID", "StudyDate"):  # fmt: skip
        assert restored[keyword].value == original[keyword].value, keyword
    assert restored.SOPInstanceUID == sr.SOPInstanceUID  # the SR's own UID is not replaced
    evidence = restored.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == original.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == original.SeriesInstanceUID
    report = read_sr(restored)
    assert {r.source_sop_instance_uid for r in report.regions} == {original.SOPInstanceUID}
    assert "PatientIdentityRemoved" not in restored
    path = tmp_path / "restored.sr.dcm"
    restored.save_as(path, enforce_file_format=True)
    assert dciodvfy_errors(path) == []


def test_a_renamed_or_altered_arrival_is_refused_and_dead_lettered(
    chest: Path, tmp_path: Path, vault: Vault
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.pipeline import Analyst
    from insightray.pacs.routing import routing_from_dict

    stored = vault.admit(read_dataset(chest))
    renamed = stored.with_name("0123456789abcdef.ir")
    stored.rename(renamed)
    with pytest.raises(TamperedDataError):
        vault.open(renamed)
    rule = {"name": "all", "task": "detection", "destination": {"dicomweb": "http://127.0.0.1:9"}}
    routing = routing_from_dict({"rules": [rule], "dead_letter": str(tmp_path / "dead")})
    outcome = Analyst(routing, vault, outbox=tmp_path / "out").handle(renamed)
    assert (outcome.status, outcome.attempts) == ("dead-letter", 0)
    assert "authentication" in outcome.reason
    assert (tmp_path / "dead" / "0123456789abcdef" / renamed.name).is_file()

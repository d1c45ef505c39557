"""A report's observations as a DICOM SR: one image-level finding per mentioned observation,
Present / Absent / Uncertain, dciodvfy-clean, and read back to the labeller's statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from insightray.errors import UnsupportedFormatError
from insightray.imaging.dicom import read_dataset
from insightray.nlp.reports import ReportLabeller
from insightray.pacs.readback import read_sr
from insightray.pacs.sr_report import build_report_sr, report_sr_bytes
from tests.pacs.helpers import dciodvfy_errors

#: The issue's sentence, with an uncertain finding added.
REPORT = (
    "FINDINGS: Chest X-ray shows no evidence of pneumothorax but a small left pleural "
    "effusion. Possible right lower lobe pneumonia."
)


def test_report_sr_holds_each_mentioned_observation_with_its_status(
    chest: Path, tmp_path: Path
) -> None:
    labels = ReportLabeller().label(REPORT)
    mentioned = {o.label: o.status for o in labels.observations if o.status != "absent"}
    assert mentioned["Pneumothorax"] == "negative"
    assert mentioned["Pleural Effusion"] == "positive"
    assert mentioned["Pneumonia"] == "uncertain"
    written = tmp_path / "report.sr.dcm"
    written.write_bytes(report_sr_bytes(chest.read_bytes(), labels))
    assert dciodvfy_errors(written) == []

    source = read_dataset(chest, header_only=True)
    back = read_sr(written)
    assert back.referenced_sop_instance_uids == (source.SOPInstanceUID,)
    evaluations = {f.label: f.evaluation for f in back.findings}
    assert evaluations == {
        label: {"positive": "Present", "negative": "Absent"}.get(
            status, "Uncertain (qualifier value)"
        )
        for label, status in mentioned.items()
    }
    name, _, version = labels.rules.partition("@")
    assert {(a[0], a[1]) for a in back.algorithms} == {(name, version)}
    document = read_dataset(written)
    assert document.PatientID == source.PatientID
    assert document.StudyInstanceUID == source.StudyInstanceUID
    assert document.SeriesDescription == "Insight Ray report observations"


def test_a_report_naming_nothing_says_no_finding_and_a_png_is_refused(chest: Path) -> None:
    labels = ReportLabeller().label("The patient was seen in clinic today.")
    document = build_report_sr(read_dataset(chest, header_only=True), labels)
    back = read_sr(document)
    assert [(f.label, f.evaluation) for f in back.findings] == [("No Finding", "Present")]
    with pytest.raises(UnsupportedFormatError, match="DICOM"):
        report_sr_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64), ReportLabeller().label(REPORT))

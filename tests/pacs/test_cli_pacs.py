"""``insightray pacs push`` and ``pacs pull`` against a real Orthanc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pacs.orthanc import Orthanc
from tests.test_cli_detect import cli

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_push_then_pull_analyses_the_study_and_stores_the_sr(
    orthanc: Orthanc, shared_data: Path, tmp_path: Path
) -> None:
    from insightray.imaging.dicom import read_dataset

    chest = shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm"
    code, _, stderr = cli("pacs", "push", str(chest), "--dicomweb", orthanc.dicomweb_url)
    assert code == 0, stderr
    assert "stored 1 of 1" in stderr
    rules = tmp_path / "routing.yaml"
    rules.write_text(
        "rules:\n  - name: chest\n    match: {modality: [CR]}\n    task: detection\n"
        f"    destination: {{dicomweb: '{orthanc.dicomweb_url}'}}\n"
        f"dead_letter: {tmp_path / 'dead'}\n"
    )
    study = str(read_dataset(chest, header_only=True).StudyInstanceUID)
    code, stdout, stderr = cli(
        "pacs", "pull", "--study", study, "--from", orthanc.dicomweb_url,
        "--rules", str(rules), "--work", str(tmp_path / "work"),
    )  # fmt: skip
    assert code == 0, stderr
    outcomes = [json.loads(line) for line in stdout.splitlines()]
    assert [o["status"] for o in outcomes if o["status"] != "unrouted"] == ["sent"]
    assert (tmp_path / "work" / "audit.jsonl").is_file()


def test_cstore_push_only_from_an_ae_title_orthanc_knows(
    orthanc: Orthanc, shared_data: Path
) -> None:
    chest = str(shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm")
    target = f"127.0.0.1:{orthanc.dicom_port}:ORTHANC"
    code, _, stderr = cli("pacs", "push", chest, "--cstore", target, "--aet", "STRANGER")
    assert code == 2
    assert "error:" in stderr and "ORTHANC@127.0.0.1" in stderr
    code, _, stderr = cli("pacs", "push", chest, "--cstore", target, "--aet", "MODALITY")
    assert code == 0, stderr
    assert "stored 1 of 1" in stderr

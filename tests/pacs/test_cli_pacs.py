"""``insightray pacs push`` and ``pacs pull`` against a real Orthanc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insightray.errors import ServiceUnavailableError
from tests.pacs.orthanc import Orthanc
from tests.test_cli_detect import cli

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_push_then_pull_analyses_the_study_and_stores_the_sr(
    orthanc: Orthanc, chest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightray.imaging.dicom import read_dataset

    monkeypatch.setenv("INSIGHTRAY_HOME", str(tmp_path / "home"))  # the data key and salt

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
    assert (tmp_path / "home" / "keys" / "data.key").is_file()
    for path in (tmp_path / "work").rglob("*"):  # inbox and outbox: sealed, de-identified
        assert not path.is_file() or b"9RG1" not in path.read_bytes()


def test_cstore_push_only_from_an_ae_title_orthanc_knows(
    orthanc: Orthanc, shared_data: Path
) -> None:
    tibia = str(shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm")
    target = f"127.0.0.1:{orthanc.dicom_port}:ORTHANC"
    code, _, stderr = cli("pacs", "push", tibia, "--cstore", target, "--aet", "STRANGER")
    assert code == 2
    assert "error:" in stderr and "ORTHANC@127.0.0.1" in stderr
    code, _, stderr = cli("pacs", "push", tibia, "--cstore", target, "--aet", "MODALITY")
    assert code == 0, stderr
    assert "stored 1 of 1" in stderr


def test_pacs_listen_receives_analyses_and_stops_on_ctrl_c(
    orthanc: Orthanc, chest: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import send_cstore
    from tests.pacs.orthanc import free_port
    from tests.processes import stop_process

    rules = tmp_path / "routing.yaml"
    rules.write_text(
        "rules:\n  - name: chest\n    match: {modality: [CR]}\n    task: detection\n"
        f"    destination: {{dicomweb: '{orthanc.dicomweb_url}'}}\n"
        f"dead_letter: {tmp_path / 'dead'}\n"
    )
    port, work = free_port(), tmp_path / "work"
    command = [sys.executable, "-m", "insightray.cli", "pacs", "listen", "--rules", str(rules),
               "--allow", "MODALITY", "--port", str(port), "--work", str(work)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INSIGHTRAY_HOME": str(tmp_path / "home")}
    # A shell that starts the test suite in the background ignores SIGINT, and children inherit
    # that: give the listener the default disposition, as a terminal's Ctrl+C finds it.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded: until the listener accepts, or 60 s
            try:
                send_cstore([read_dataset(chest)], host="127.0.0.1", port=port,
                            called_aet="INSIGHTRAY", calling_aet="MODALITY")  # fmt: skip
                break
            except ServiceUnavailableError:
                assert time.monotonic() < deadline, "the listener did not start within 60 s"
                assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.3)
        audit = work / "audit.jsonl"
        while not audit.is_file() and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)  # a loaded 2-core machine is slow
    finally:
        if process.poll() is None:
            stop_process(process)  # type: ignore[arg-type]
    assert process.returncode == 0, stderr.decode()[-2000:]
    (line,) = stdout.decode().splitlines()
    assert json.loads(line)["status"] == "sent"


def test_a_dead_letter_is_sent_once_the_destination_is_back(
    orthanc: Orthanc, chest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightray.imaging.dicom import read_dataset
    from tests.pacs.orthanc import free_port

    monkeypatch.setenv("INSIGHTRAY_HOME", str(tmp_path / "home"))
    orthanc.rest("/instances", chest.read_bytes(), raw=True)
    rules = tmp_path / "routing.yaml"

    def route_to(url: str) -> None:
        rules.write_text(
            "rules:\n  - name: chest\n    match: {modality: [CR]}\n    task: detection\n"
            f"    destination: {{dicomweb: '{url}'}}\nretry: {{attempts: 1}}\n"
            f"dead_letter: {tmp_path / 'dead'}\n"
        )

    route_to(f"http://127.0.0.1:{free_port()}/dicom-web")  # the PACS is down
    study = str(read_dataset(chest, header_only=True).StudyInstanceUID)
    work = ["--rules", str(rules), "--work", str(tmp_path / "work")]
    code, stdout, stderr = cli("pacs", "pull", "--study", study, "--from", orthanc.dicomweb_url,
                               *work)  # fmt: skip
    assert code == 0, stderr
    (failed,) = [o for o in map(json.loads, stdout.splitlines()) if o["status"] != "unrouted"]
    assert failed["status"] == "dead-letter" and "cannot be reached" in failed["reason"]
    route_to(orthanc.dicomweb_url)  # back
    code, stdout, stderr = cli("pacs", "retry", failed["sop"], *work)
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "sent"
    assert not (tmp_path / "dead" / failed["sop"]).exists()
    code, _, stderr = cli("pacs", "retry", failed["sop"], *work)
    assert code != 0 and "no such dead letter" in stderr

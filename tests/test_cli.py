"""The command line as a user runs it: real files in, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from tests.imaging.helpers import pydicom_file, write_dicom


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insightray.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def patient_file(tmp_path: Path) -> Path:
    return write_dicom(
        tmp_path / "patient.dcm",
        np.arange(64, dtype=np.uint16).reshape(8, 8),
        PatientName="Doe^Jane",
        PatientID="MRN-12345",
        PatientBirthDate="19700101",
        BodyPartExamined="CHEST",
        ViewPosition="PA",
        ImagerPixelSpacing=[0.15, 0.15],
    )


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for verb in ("info", "convert", "demo"):
        assert verb in result.stdout


def test_info_hides_patient_identifiers_unless_asked(patient_file: Path) -> None:
    plain = run_cli("info", str(patient_file), "--json")
    assert plain.returncode == 0, plain.stderr
    record = json.loads(plain.stdout)
    assert record["meta"]["body_part"] == "CHEST" and record["meta"]["view"] == "PA"
    assert record["meta"]["pixel_spacing"] == [0.15, 0.15]
    for secret in ("Doe", "MRN-12345", "19700101"):
        assert secret not in plain.stdout + plain.stderr
    shown = run_cli("info", str(patient_file), "--json", "--show-phi")
    assert json.loads(shown.stdout)["phi"]["PatientID"] == "MRN-12345"


def test_convert_writes_8_and_16_bit_png_with_window(tmp_path: Path, patient_file: Path) -> None:
    for bits, dtype in (("8", np.uint8), ("16", np.uint16)):
        out = tmp_path / f"out{bits}"
        result = run_cli(
            "convert",
            str(patient_file),
            "--out",
            str(out),
            "--bits",
            bits,
            "--window",
            "31.5",
            "64",
            "--clahe",
        )
        assert result.returncode == 0, result.stderr
        png = cv2.imread(str(out / "patient.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == dtype and png.shape == (8, 8)


def test_folder_with_mixed_content_processes_the_good_and_reports_the_bad(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_dicom(folder / "good.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4))
    cv2.imwrite(str(folder / "good2.png"), np.zeros((4, 4), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.dcm").write_bytes(b"")
    sr = pydicom.dcmread(pydicom_file("reportsi.dcm"))
    sr.save_as(folder / "report.dcm")
    out = tmp_path / "out"
    result = run_cli("convert", str(folder), "--out", str(out))
    assert result.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "good2.png"]
    for name in ("notes.txt", "empty.dcm", "report.dcm"):
        assert name in result.stderr
    assert "3 of 5 files failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("info", "/nonexistent/file.dcm"),
        ("info", str(pydicom_file("rtdose.dcm"))),
        ("convert", str(pydicom_file("MR_truncated.dcm")), "--out", "/tmp/insightray-never"),
        ("info", str(pydicom_file("test-SR.dcm"))),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


def test_multiframe_frame_option(tmp_path: Path) -> None:
    result = run_cli(
        "convert", str(pydicom_file("rtdose.dcm")), "--frame", "2", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rtdose.png").is_file()


def test_shared_dicom_files_all_convert(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "dicom").glob("*.dcm"))
    assert len(files) == 4
    result = run_cli("convert", *map(str, files), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("*.png"))) == 4


def test_demo_runs(tmp_path: Path) -> None:
    result = run_cli("demo", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Web service and viewer" in result.stdout
    assert list(tmp_path.glob("*.png"))


def test_the_cli_starts_without_importing_torch() -> None:
    """`insightray --help` and every verb's parsing stay fast: torch (over a second to import)
    loads only inside the commands that run a model."""
    probe = "import sys, insightray.cli; print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

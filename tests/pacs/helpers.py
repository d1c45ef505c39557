"""Shared checks for the PACS tests: dciodvfy and box comparison."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

#: Boxes in an SR equal the JSON result's to this many pixels (the issue's tolerance).
BOX_TOLERANCE_PX = 0.5


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines Debian's dciodvfy (dicom3tools) prints for a DICOM file."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed: apt-get install dicom3tools (make test does)")
    done = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (done.stdout + done.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def assert_same_boxes(
    json_boxes: Sequence[Sequence[float]], sr_boxes: Sequence[Sequence[float]]
) -> None:
    """Same count, and every coordinate within :data:`BOX_TOLERANCE_PX`, in order."""
    assert len(sr_boxes) == len(json_boxes)
    for expected, got in zip(json_boxes, sr_boxes, strict=True):
        assert got == pytest.approx(list(expected), abs=BOX_TOLERANCE_PX)

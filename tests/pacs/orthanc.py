"""A real Orthanc (Debian's package) on free loopback ports, stopped by PID.

The PACS tests and ``benchmarks/bench_pacs.py`` start it with :func:`run_orthanc`.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import stop_process

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: How long Orthanc may take to answer after start (it takes about a second here).
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its REST/DICOMweb base URL and its DICOM (DIMSE) address."""

    http_port: int
    dicom_port: int
    aet: str
    pid: int

    @property
    def url(self) -> str:
        """The REST API's base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb plugin's root."""
        return f"{self.url}/dicom-web"

    def rest(
        self, path: str, body: object | None = None, method: str | None = None, raw: bool = False
    ) -> Any:
        """Call Orthanc's REST API and return its decoded JSON answer (``raw``: body is bytes)."""
        data = body if raw else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
        return json.loads(text) if text else None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/system", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S} s")


def orthanc_installed() -> bool:
    """Whether Debian's orthanc and orthanc-dicomweb are installed."""
    return shutil.which("Orthanc") is not None and DICOMWEB_PLUGIN.is_file()


@contextmanager
def run_orthanc(folder: Path) -> Iterator[Orthanc]:
    """Start Orthanc with a throwaway storage folder and the DICOMweb plugin; stop it after.

    Raises:
        FileNotFoundError: Orthanc or its DICOMweb plugin is not installed.
    """
    binary = shutil.which("Orthanc")
    if binary is None or not orthanc_installed():
        raise FileNotFoundError("apt-get install orthanc orthanc-dicomweb (make pacs-tools)")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "InsightRayTest",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        # Orthanc 1.10 cannot bind to loopback alone: HTTP refuses remote clients, and DICOM
        # accepts only the modalities declared below (by AE title and host 127.0.0.1).
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {
            name: {"AET": aet, "Host": "127.0.0.1", "Port": 1}
            for name, aet in (("insightray", "INSIGHTRAY"), ("modality", "MODALITY"))
        },
        "DicomScuTimeout": 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "orthanc.json"
    config_file.write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    process = subprocess.Popen([binary, str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(http_port, dicom_port, "ORTHANC", process.pid)
    try:
        _wait_until_up(server.url, process)
        yield server
    finally:
        stop_process(process)
        log.close()

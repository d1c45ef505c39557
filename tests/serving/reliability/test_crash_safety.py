"""Crash safety: SIGKILL ``insightray serve`` in the middle of uploads and analyses, restart it.

On SQLite and on PostgreSQL, clients upload real radiographs and analyse them while the
service is killed with SIGKILL (twice, each time with requests in flight) and restarted on
the same ``INSIGHTRAY_HOME``. Afterwards:

- every upload the service acknowledged (201, or 200 for an image it already held) is still
  there with its bytes intact, seen through the restarted service and in the store itself;
  every acknowledged analysis (200) still has its result;
- the database is consistent: each study's blob exists and decrypts to its SHA-256, each
  result belongs to a study and its output and overlay decrypt;
- every stored study and result has its audit record (what was written is audited);
- ``insightray audit verify`` exits 0.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from insightray.config import data_root
from insightray.errors import InsightRayError
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.crypto import KeyRing
from insightray.serving.storage.db import AuditRecord, Database, Result, Study
from tests.serving.reliability.server import ServiceProcess, bearer, create_users

KILLS = 2
UPLOAD_CLIENTS = 4
ANALYZE_CLIENTS = 3
#: Acknowledged uploads and analyses per run before the kill (so both are under way).
ACKS_BEFORE_KILL = 4
#: Every n-th upload is the DICOM (de-identified on ingest); the rest are distinct JPEGs.
DICOM_EVERY = 6


@dataclass
class Ledger:
    """What the clients sent and what the service acknowledged (shared by the threads)."""

    uploads: dict[str, bytes | None] = field(default_factory=dict)  # id -> JPEG sent / DICOM
    results: dict[str, str] = field(default_factory=dict)  # result id -> study id
    unexpected: list[str] = field(default_factory=list)  # answers other than 201 / 200 (dup)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Traffic:
    """Upload and analyse clients running in threads until :meth:`stop`."""

    def __init__(
        self, base_url: str, headers: dict[str, str], files: Iterator[Path], ledger: Ledger
    ) -> None:
        self.base_url, self.headers, self.files, self.ledger = base_url, headers, files, ledger
        self.acked = {"upload": 0, "analyze": 0}
        self._stop = threading.Event()
        loops = [self._upload_loop] * UPLOAD_CLIENTS + [self._analyze_loop] * ANALYZE_CLIENTS
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in loops]

    def start(self) -> None:
        """Start the clients."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the clients and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _send(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.ledger.lock:
            self.ledger.in_flight += 1
        try:
            return client.request(method, path, headers=self.headers, **kwargs)
        finally:
            with self.ledger.lock:
                self.ledger.in_flight -= 1

    def _upload_loop(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=120) as client:
            while not self._stop.is_set():
                with self.ledger.lock:
                    path = next(self.files)
                data = path.read_bytes()
                try:
                    response = self._send(client, "POST", "/v1/studies", files={"file": data})
                except httpx.HTTPError:  # the service was killed: not acknowledged
                    time.sleep(0.05)
                    continue
                # 200: the same image again, answered with the study that already holds it
                # (acknowledged too: it must survive like a new one).
                duplicate = response.status_code == 200 and response.json().get("duplicate")
                with self.ledger.lock:
                    if response.status_code != 201 and not duplicate:
                        self.ledger.unexpected.append(f"upload {response.status_code}")
                        continue
                    sent = None if path.suffix == ".dcm" else data
                    self.ledger.uploads[response.json()["id"]] = sent
                    self.acked["upload"] += 1

    def _analyze_loop(self) -> None:
        chooser = random.Random()
        with httpx.Client(base_url=self.base_url, timeout=120) as client:
            while not self._stop.is_set():
                with self.ledger.lock:
                    known = list(self.ledger.uploads)
                if not known:
                    time.sleep(0.05)
                    continue
                study = chooser.choice(known[-20:])  # recent uploads: mostly new images
                path = f"/v1/studies/{study}/analyze"
                try:
                    response = self._send(client, "POST", path, json={"task": "cxr"})
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                with self.ledger.lock:
                    if response.status_code != 200:
                        self.ledger.unexpected.append(f"analyze {response.status_code}")
                        continue
                    self.ledger.results[response.json()["result_id"]] = study
                    self.acked["analyze"] += 1


def _upload_files() -> Iterator[Path]:
    jpegs = sorted((data_root() / "cxr" / "tbx11k" / "images").glob("*.jpg"))
    dicom = data_root() / "dicom" / "cr_chest_pa_jpeg_baseline.dcm"
    if len(jpegs) < 100 or not dicom.is_file():
        pytest.skip("the shared chest X-ray data is not found")
    order = random.Random(7).sample(jpegs, len(jpegs))
    for index in itertools.count():
        yield dicom if index % DICOM_EVERY == DICOM_EVERY - 1 else order[index % len(order)]


def _check_through_service(server: ServiceProcess, headers: dict[str, str], ledger: Ledger) -> None:
    """The restarted service still serves every acknowledged study and result."""
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
        for study_id, sent in ledger.uploads.items():
            response = client.get(f"/v1/studies/{study_id}")
            assert response.status_code == 200, (study_id, response.text)
            if sent is not None:
                assert response.json()["sha256"] == hashlib.sha256(sent).hexdigest()
        for result_id, study_id in ledger.results.items():
            response = client.get(f"/v1/results/{result_id}")
            assert response.status_code == 200, (result_id, response.text)
            assert response.json()["study_id"] == study_id


def _check_storage(home: Path, database_url: str | None, ledger: Ledger) -> dict[str, int]:
    """Database rows, store blobs and audit records after the last crash; returns counts."""
    settings = ServeSettings(home=home, database_url=database_url or "")
    db = Database(settings.database_url)
    store = BlobStore(settings.store_dir, KeyRing.from_settings(settings))
    try:
        with db.session(read_only=True) as session:
            studies = {study.id: study for study in session.scalars(select(Study))}
            results = {result.id: result for result in session.scalars(select(Result))}
            audited = {
                (row.action, row.study_id)
                for row in session.execute(
                    select(AuditRecord.action, AuditRecord.study_id).where(
                        AuditRecord.outcome == "ok"
                    )
                )
            }
    finally:
        db.close()
    problems: list[str] = []

    def blob(key: str | None, what: str) -> bytes:
        try:
            return store.get(key or "")
        except InsightRayError as error:
            problems.append(f"{what}: {error}")
            return b""

    for study in studies.values():
        data = blob(study.sha256, f"study {study.id}")
        if data and len(data) != study.size_bytes:
            problems.append(f"study {study.id}: {len(data)} bytes, the row says {study.size_bytes}")
        if ("study.upload", study.id) not in audited:
            problems.append(f"study {study.id} has no study.upload audit record")
    for result in results.values():
        if result.study_id not in studies:
            problems.append(f"result {result.id} names a missing study {result.study_id}")
        document = blob(result.output_sha256, f"result {result.id} output")
        if document and json.loads(document)["response"]["result_id"] != result.id:
            problems.append(f"result {result.id}: its output belongs to another result")
        blob(result.image_sha256, f"result {result.id} overlay")
        if ("study.analyze", result.study_id) not in audited:
            problems.append(f"result {result.id} has no study.analyze audit record")
    for study_id, sent in ledger.uploads.items():
        if study_id not in studies:
            problems.append(f"acknowledged upload {study_id} is lost")
        elif sent is not None and blob(studies[study_id].sha256, study_id) != sent:
            problems.append(f"acknowledged upload {study_id} changed")
    for result_id in ledger.results:
        if result_id not in results:
            problems.append(f"acknowledged analysis {result_id} is lost")
    assert not problems, "\n".join(problems[:20])
    return {"studies": len(studies), "results": len(results)}


@pytest.mark.slow
def test_sigkill_mid_flight_loses_no_acknowledged_work(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    url = None if database_url.startswith("sqlite") else database_url
    create_users(home, url, {"crash1": "clinician"})
    files = _upload_files()
    ledger = Ledger()
    server = ServiceProcess(home, url, settings={"rate_per_s": "100000", "rate_burst": "100000"})
    headers: dict[str, str] = {}
    in_flight_at_kill = []
    try:
        for run in range(KILLS):
            server.start()
            server.wait_ready("/healthz")
            if run == 0:
                headers = bearer(server.base_url, "crash1")
            else:  # the restarted service has everything acknowledged before the crash
                _check_through_service(server, headers, ledger)
            traffic = Traffic(server.base_url, headers, files, ledger)
            traffic.start()
            deadline = time.monotonic() + 180
            while min(traffic.acked.values()) < ACKS_BEFORE_KILL and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(random.uniform(0.0, 0.3))
            with ledger.lock:  # nothing can finish between the count and the kill
                in_flight_at_kill.append(ledger.in_flight)
                server.kill()
            traffic.stop()
            assert min(traffic.acked.values()) >= ACKS_BEFORE_KILL, server.log_tail()
    finally:
        server.kill()
    counts = _check_storage(home, url, ledger)
    verify = server.cli("audit", "verify")
    print(
        f"\n{database_url.split(':')[0]}: {KILLS} kills with {in_flight_at_kill} requests in "
        f"flight; {len(ledger.uploads)} uploads and {len(ledger.results)} analyses "
        f"acknowledged, {counts} rows; {verify.stdout.strip()}"
    )
    assert not ledger.unexpected, ledger.unexpected[:10]
    assert all(count > 0 for count in in_flight_at_kill)
    assert verify.returncode == 0, verify.stdout + verify.stderr

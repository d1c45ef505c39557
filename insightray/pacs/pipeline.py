"""What happens to an arriving DICOM file: route, analyse, write the SR, send it, or dead-letter.

:class:`Analyst` takes one file at a time. The first routing rule that fits its header names
the model; the result becomes a DICOM SR (:mod:`insightray.pacs.sr`) that goes to the rule's
destination (DICOMweb STOW-RS or C-STORE), retried with a doubling back-off. What cannot be
analysed or sent moves to the dead-letter folder with a ``reason.json`` beside it: nothing is
lost. Every file leaves one line in the audit log (JSON lines), which names the rule, the
outcome and a hash of the SOP Instance UID, never patient data.

Example:
    >>> analyst = Analyst(load_routing(Path("routing.yaml")), outbox=Path("out"))  # doctest: +SKIP
    >>> analyst.handle(Path("inbox/1.2.3.dcm")).status  # doctest: +SKIP
    'sent'
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from insightray.errors import InsightRayError, ServiceError
from insightray.imaging.dicom import read_dataset
from insightray.pacs.dicomweb import DicomWeb
from insightray.pacs.dimse import DEFAULT_AET, send_cstore, tls_context
from insightray.pacs.routing import Route, RoutingConfig
from insightray.pacs.sr import write_sr

__all__ = ["Analyst", "Outcome", "sop_hash"]


def sop_hash(uid: str) -> str:
    """A short, stable stand-in for a UID in logs (UIDs can identify a patient's study)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Outcome:
    """What became of one file.

    Attributes:
        status: ``"sent"``, ``"unrouted"`` (no rule fits; the file is left where it is) or
            ``"dead-letter"``.
        rule: The rule that fit, if any.
        sop: :func:`sop_hash` of the file's SOP Instance UID (empty if unreadable).
        attempts: How many times sending was tried.
        reason: Why it was not sent (one line, no patient data).
        sr_path: The SR written, where it now lies.
    """

    status: str
    rule: str | None = None
    sop: str = ""
    attempts: int = 0
    reason: str = ""
    sr_path: str | None = None


class Analyst:
    """Runs routing rules on arriving files; predictors are loaded once per (task, model).

    Args:
        routing: The rules, retry policy and dead-letter folder.
        outbox: Where SRs are written before they are sent.
        audit_log: A JSON-lines file each outcome is appended to (``None``: none).
        calling_aet: The AE title used for C-STORE destinations.
        sleep: How to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        routing: RoutingConfig,
        *,
        outbox: Path,
        audit_log: Path | None = None,
        calling_aet: str = DEFAULT_AET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.routing = routing
        self.outbox = outbox
        self.audit_log = audit_log
        self.calling_aet = calling_aet
        self._sleep = sleep
        self._predictors: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    def _predictor(self, route: Route) -> Any:
        from insightray.engine import load_predictor

        key = (route.task, route.model)
        with self._lock:
            if key not in self._predictors:
                self._predictors[key] = load_predictor(route.model, task=route.task)
            return self._predictors[key]

    def _analyse(self, path: Path, route: Route) -> Path:
        predictor = self._predictor(route)
        result = predictor.predict_paths([str(path)])[0]
        results = {
            "detection" if route.task == "detection" else "fracture": (result, predictor.card)
        }
        return write_sr(path, self.outbox, **results)

    def _send(self, sr_path: Path, route: Route) -> None:
        dataset = read_dataset(sr_path)
        if route.dicomweb is not None:
            DicomWeb(route.dicomweb).store([dataset])
        elif route.cstore is not None:
            peer = route.cstore
            tls = tls_context(server=False, ca=peer.ca) if peer.tls else None
            send_cstore(
                [dataset],
                host=peer.host,
                port=peer.port,
                called_aet=peer.aet,
                calling_aet=self.calling_aet,
                tls=tls,
            )

    def handle(self, path: Path) -> Outcome:
        """Route, analyse and send one DICOM file; never raises: whatever goes wrong (the
        file, the PACS, or a bug, named by its type) becomes a dead-letter outcome."""
        try:
            return self._handle(path)
        except Exception as error:  # one bad file must never stop the listener's worker
            failed = Outcome("dead-letter", reason=f"internal error ({type(error).__name__})")
            return self._record(self._dead_letter(path, None, failed))

    def _handle(self, path: Path) -> Outcome:
        try:
            header = read_dataset(path, header_only=True)
        except InsightRayError as error:
            return self._record(
                self._dead_letter(path, None, Outcome("dead-letter", reason=str(error)))
            )
        sop = sop_hash(str(header.get("SOPInstanceUID", "")))
        route = self.routing.route_for(header)
        if route is None:
            return self._record(Outcome("unrouted", sop=sop, reason="no routing rule fits"))
        try:
            sr_path = self._analyse(path, route)
        except InsightRayError as error:
            failed = Outcome("dead-letter", route.name, sop, reason=str(error))
            return self._record(self._dead_letter(path, None, failed))
        retry = self.routing.retry
        attempt = 0
        while attempt < retry.attempts:
            attempt += 1
            try:
                self._send(sr_path, route)
                return self._record(Outcome("sent", route.name, sop, attempt, sr_path=str(sr_path)))
            except ServiceError as error:  # the PACS: down, refusing, timing out: retry
                reason = str(error)
                if attempt < retry.attempts:
                    self._sleep(retry.backoff_s * 2 ** (attempt - 1))
            except InsightRayError as error:  # our side (a TLS file): retrying cannot help
                reason = str(error)
                break
        failed = Outcome("dead-letter", route.name, sop, attempt, reason)
        return self._record(self._dead_letter(path, sr_path, failed))

    def _dead_letter(self, path: Path, sr_path: Path | None, outcome: Outcome) -> Outcome:
        folder = self.routing.dead_letter / (outcome.sop or sop_hash(path.name))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / "source.dcm")
        kept = None
        if sr_path is not None:
            kept = folder / sr_path.name
            shutil.move(sr_path, kept)
        outcome = Outcome(**{**asdict(outcome), "sr_path": None if kept is None else str(kept)})
        (folder / "reason.json").write_text(json.dumps(asdict(outcome), indent=2) + "\n")
        return outcome

    def _record(self, outcome: Outcome) -> Outcome:
        if self.audit_log is not None:
            line = {"time": time.time(), "event": "pacs.arrival", **asdict(outcome)}
            line.pop("sr_path")
            with self._lock, self.audit_log.open("a") as log:
                log.write(json.dumps(line) + "\n")
        return outcome

"""What happens to an arrival: route, analyse, write the SR, send it back, or dead-letter.

:class:`Analyst` takes one sealed arrival (:mod:`insightray.pacs.vault`: de-identified and
encrypted on ingest) at a time. The first routing rule that fits its original header names
the model, which reads the de-identified image; the result becomes a DICOM SR
(:mod:`insightray.pacs.sr`) of the de-identified image, kept sealed in the outbox. Only on
the way out, in memory, does the SR get the original patient and study identifiers back
(:meth:`~insightray.pacs.vault.Vault.restore`) before it goes to the rule's destination
(DICOMweb STOW-RS or C-STORE: point it at the PACS the studies come from), retried with a
doubling back-off. What cannot be analysed or sent moves, still sealed, to the dead-letter
folder with a ``reason.json`` beside it: nothing is lost. Every arrival leaves one line in
the audit log (JSON lines), which names the rule, the outcome and the arrival's hash, never
patient data or UIDs.

Example:
    >>> vault = Vault(Path("inbox"), keyring, salt)  # doctest: +SKIP
    >>> analyst = Analyst(load_routing(Path("routing.yaml")), vault, outbox=Path("out"))
    ... # doctest: +SKIP
    >>> analyst.handle(vault.admit(dataset)).status  # doctest: +SKIP
    'sent'
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from insightray.errors import InsightRayError, NotFoundError, ServiceError
from insightray.imaging import read_image
from insightray.pacs.dicomweb import DicomWeb
from insightray.pacs.dimse import DEFAULT_AET, send_cstore, tls_context
from insightray.pacs.gsps import build_gsps
from insightray.pacs.routing import Route, RoutingConfig
from insightray.pacs.sr import build_sr
from insightray.pacs.vault import ARRIVAL_SUFFIX, Arrival, Vault

__all__ = ["Analyst", "Outcome", "dead_letters"]

#: The suffix of a sealed SR (in the outbox and the dead letters).
SR_SUFFIX = ".sr.ir"
_SOP = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Outcome:
    """What became of one file.

    Attributes:
        status: ``"sent"``, ``"unrouted"`` (no rule fits; the file is left where it is) or
            ``"dead-letter"``.
        rule: The rule that fit, if any.
        sop: The arrival's hash (:func:`~insightray.pacs.vault.sop_hash` of its replacement
            SOP Instance UID; safe to log).
        attempts: How many times sending was tried.
        reason: Why it was not sent (one line, no patient data).
        sr_path: The sealed, de-identified SR (open it with :meth:`Vault.read`), where it
            now lies.
    """

    status: str
    rule: str | None = None
    sop: str = ""
    attempts: int = 0
    reason: str = ""
    sr_path: str | None = None


class Analyst:
    """Runs routing rules on arrivals; predictors are loaded once per (task, model).

    Args:
        routing: The rules, retry policy and dead-letter folder.
        vault: Opens arrivals, seals SRs, restores identifiers on the way out.
        outbox: Where the sealed, de-identified SRs are kept.
        audit_log: A JSON-lines file each outcome is appended to (``None``: none).
        calling_aet: The AE title used for C-STORE destinations.
        sleep: How to wait between retries (tests pass a recorder).
    """

    def __init__(
        self,
        routing: RoutingConfig,
        vault: Vault,
        *,
        outbox: Path,
        audit_log: Path | None = None,
        calling_aet: str = DEFAULT_AET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.routing = routing
        self.vault = vault
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

    def _analyse(self, arrival: Arrival, route: Route) -> tuple[Dataset, Dataset | None]:
        """The SR (and the rule's presentation state) of the de-identified image: the model
        never sees the original header."""
        predictor = self._predictor(route)
        header = arrival.header()
        result = predictor.predict([read_image(arrival.image, name="arrival")])[0]
        results = {
            "detection" if route.task == "detection" else "fracture": (result, predictor.card)
        }
        gsps = build_gsps(header, result, predictor.card) if route.presentation_state else None
        return build_sr(header, **results), gsps

    def _send(self, documents: list[Dataset], route: Route) -> None:
        if route.dicomweb is not None:
            DicomWeb(route.dicomweb).store(documents)
        elif route.cstore is not None:
            peer = route.cstore
            tls = tls_context(server=False, ca=peer.ca) if peer.tls else None
            send_cstore(
                documents,
                host=peer.host,
                port=peer.port,
                called_aet=peer.aet,
                calling_aet=self.calling_aet,
                tls=tls,
            )

    def handle(self, path: Path) -> Outcome:
        """Route, analyse and send one sealed arrival; never raises: whatever goes wrong (the
        file, the PACS, or a bug, named by its type) becomes a dead-letter outcome."""
        try:
            return self._handle(path)
        except Exception as error:  # one bad file must never stop the listener's worker
            failed = Outcome("dead-letter", reason=f"internal error ({type(error).__name__})")
            return self._record(self._dead_letter(path, None, failed))

    def _handle(self, path: Path) -> Outcome:
        try:
            arrival = self.vault.open(path)
        except InsightRayError as error:
            return self._record(
                self._dead_letter(path, None, Outcome("dead-letter", reason=str(error)))
            )
        sop = arrival.sop
        route = self.routing.route_for(arrival.identity)  # the Basic Profile drops some keys
        if route is None:
            return self._record(Outcome("unrouted", sop=sop, reason="no routing rule fits"))
        try:
            sr, gsps = self._analyse(arrival, route)
        except InsightRayError as error:
            failed = Outcome("dead-letter", route.name, sop, reason=str(error))
            return self._record(self._dead_letter(path, None, failed))
        sr_path = self.outbox / f"{sop}{SR_SUFFIX}"
        self.vault.write(sr_path, _encode(sr))
        # The original identifiers, in memory only, on the way out.
        outgoing = [self.vault.restore(doc, arrival) for doc in (sr, gsps) if doc is not None]
        retry = self.routing.retry
        attempt = 0
        while attempt < retry.attempts:
            attempt += 1
            try:
                self._send(outgoing, route)
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

    def pull(self, pacs: DicomWeb, study_uid: str) -> Iterator[Outcome]:
        """Retrieve a study by WADO-RS and handle each instance as it is admitted.

        Instances no rule takes (an SR or presentation state in the study) are dropped
        from the inbox: they stay in the PACS, and nothing would handle them later.
        """
        for dataset in pacs.retrieve_study(study_uid):
            target = self.vault.admit(dataset)  # de-identified and sealed before anything else
            outcome = self.handle(target)
            target.unlink(missing_ok=True)  # sent, copied to the dead letters, or unrouted
            yield outcome

    def retry(self, sop: str) -> Outcome:
        """Handle a dead letter's arrival again (analysis included); a new failure makes a
        new dead letter under the same name.

        Raises:
            NotFoundError: No dead letter ``sop`` (its name in :func:`dead_letters`).
        """
        folder = self.routing.dead_letter / sop
        arrivals = [] if not _SOP.fullmatch(sop) else sorted(folder.glob(f"*{ARRIVAL_SUFFIX}"))
        arrivals = [path for path in arrivals if not path.name.endswith(SR_SUFFIX)]
        if not arrivals:
            raise NotFoundError(f"dead letter {sop}", "no such dead letter", "list them first")
        target = self.vault.inbox / arrivals[0].name
        self.vault.inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(arrivals[0], target)
        shutil.rmtree(folder)  # the arrival is safe in the inbox; a failure makes a new one
        outcome = self.handle(target)
        if outcome.status != "unrouted":
            target.unlink(missing_ok=True)
        return outcome

    def _dead_letter(self, path: Path, sr_path: Path | None, outcome: Outcome) -> Outcome:
        folder = self.routing.dead_letter / (outcome.sop or path.name.split(".")[0])
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(path, folder / path.name)  # still sealed, under its name (its AAD)
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


def _encode(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dead_letters(folder: Path) -> list[Outcome]:
    """The dead letters under ``folder``, oldest first (their ``reason.json``)."""
    found = []
    for reason in folder.glob("*/reason.json"):
        try:
            fields = json.loads(reason.read_text())
            outcome = Outcome(**{**fields, "sop": fields.get("sop") or reason.parent.name})
        except (ValueError, TypeError):
            outcome = Outcome(
                "dead-letter", sop=reason.parent.name, reason="reason.json unreadable"
            )
        found.append((reason.stat().st_mtime, outcome))
    return [outcome for _, outcome in sorted(found, key=lambda item: item[0])]

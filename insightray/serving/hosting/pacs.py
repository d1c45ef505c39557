"""The service's side of the PACS: the ``pacs pull`` / dead-letter verbs for the admin routes.

:class:`PacsGateway` talks to the one PACS the settings name (``pacs_dicomweb_url``; no URL
is ever taken from a request) and runs the same pipeline as ``insightray pacs pull``
(:mod:`insightray.pacs.pipeline`): arrivals are de-identified and sealed on ingest into
``<home>/pacs/inbox`` with the service's own key ring and site salt (injected: ``pacs`` does
not import ``serving``), analysed by the routing file's rules, and their SRs go back to the
PACS with the original identifiers restored in memory only. Pulls run one at a time; the
models the routing rules name are loaded once, on the first pull.

Blocking functions, called from request threads. Study search answers hold patient data
(names, IDs): they go to the admin who asked and never into a log or audit record.

Example:
    >>> gateway = PacsGateway(settings, keyring, salt)  # doctest: +SKIP
    >>> [o.status for o in gateway.pull("1.2.3")]  # doctest: +SKIP
    ['sent']
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from insightray.errors import InsightRayError, NotFoundError, ServiceUnavailableError
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.crypto import KeyRing

if TYPE_CHECKING:
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.pipeline import Analyst, Outcome
    from insightray.pacs.vault import Vault
    from insightray.serving.deps import Principal, Services

__all__ = ["PacsGateway", "open_study"]


class PacsGateway:
    """The configured PACS, the vault and the analyst, built on first use.

    Args:
        settings: ``pacs_dicomweb_url``, ``pacs_routing`` and ``pacs_dir`` are read.
        keyring: Seals arrivals (the service's data keys).
        salt: The site's de-identification salt.
    """

    def __init__(self, settings: ServeSettings, keyring: KeyRing, salt: bytes) -> None:
        self.settings = settings
        self._keyring = keyring
        self._salt = salt
        self._analyst: Analyst | None = None
        self._lock = threading.Lock()

    def client(self) -> DicomWeb:
        """The configured PACS.

        Raises:
            ServiceUnavailableError: No PACS is configured (503).
        """
        from insightray.pacs.dicomweb import DicomWeb

        if not self.settings.pacs_dicomweb_url:
            raise ServiceUnavailableError(
                "PACS", "no PACS is configured", "set INSIGHTRAY_PACS_DICOMWEB_URL and restart"
            )
        return DicomWeb(self.settings.pacs_dicomweb_url)

    def vault(self) -> Vault:
        """The sealed inbox under ``<home>/pacs``."""
        from insightray.pacs.vault import Vault

        return Vault(self.settings.pacs_dir / "inbox", self._keyring, self._salt)

    def analyst(self) -> Analyst:
        """The routing file's analyst (loaded once).

        Raises:
            ServiceUnavailableError: No routing file is configured (503).
            ConfigError: The routing file is invalid.
        """
        from insightray.pacs.pipeline import Analyst
        from insightray.pacs.routing import load_routing

        if self.settings.pacs_routing is None:
            raise ServiceUnavailableError(
                "PACS routing", "no routing file is configured", "set INSIGHTRAY_PACS_ROUTING"
            )
        if self._analyst is None:
            self.settings.pacs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._analyst = Analyst(
                load_routing(self.settings.pacs_routing),
                self.vault(),
                outbox=self.settings.pacs_dir / "outbox",
                audit_log=self.settings.pacs_dir / "audit.jsonl",
            )
        return self._analyst

    def search(self, filters: dict[str, str], limit: int) -> list[dict[str, Any]]:
        """QIDO-RS studies of the configured PACS (patient data: for the caller only)."""
        return [asdict(study) for study in self.client().find_studies(filters, limit=limit)]

    def pull(self, study_uid: str) -> list[Outcome]:
        """Retrieve, analyse and answer one study, as ``insightray pacs pull`` does.

        Raises:
            NotFoundError: The PACS has no such study (404).
            ServiceUnavailableError: The PACS cannot be reached, or nothing is configured.
            UpstreamError: The PACS refused the request (502).
        """
        client = self.client()
        with self._lock:
            analyst = self.analyst()
            if not client.find_studies({"study_uid": study_uid}, limit=1):
                raise NotFoundError("study", "the PACS has no such study", "search it first")
            return list(analyst.pull(client, study_uid))

    def dead_letters(self) -> list[Outcome]:
        """What could not be analysed or sent, oldest first."""
        from insightray.pacs.pipeline import dead_letters

        return dead_letters(self.analyst().routing.dead_letter)

    def retry(self, sop: str) -> Outcome:
        """Handle a dead letter again (re-analysed, sent back).

        Raises:
            NotFoundError: No such dead letter (404).
        """
        with self._lock:
            return self.analyst().retry(sop)

    def status(self) -> dict[str, Any]:
        """What is configured, whether the PACS answers, how many dead letters wait."""
        status: dict[str, Any] = {
            "dicomweb_url": self.settings.pacs_dicomweb_url,
            "routing": None
            if self.settings.pacs_routing is None
            else str(self.settings.pacs_routing),
            "reachable": None,
            "problem": None,
            "rules": [],
            "dead_letters": None,
        }
        try:
            self.client().find_studies({}, limit=1)
            status["reachable"] = True
        except InsightRayError as error:
            status["reachable"], status["problem"] = False, str(error)
        if self.settings.pacs_routing is not None:
            try:
                analyst = self.analyst()
                status["rules"] = [rule.name for rule in analyst.routing.rules]
                status["dead_letters"] = len(self.dead_letters())
            except InsightRayError as error:
                status["problem"] = str(error)
        return status


def open_study(services: Services, who: Principal, study_uid: str) -> list[dict[str, Any]]:
    """Bring a PACS study into the viewer: each image becomes a study of ``who``, through the
    upload path (de-identified and encrypted, ``study.upload`` audited; an image already
    there comes back as it is), with the boxes of the newest SR on it as ``sr_findings``.

    Raises:
        NotFoundError: The PACS has no such study (404).
        ServiceUnavailableError: No PACS is configured, or it cannot be reached (503).
    """
    from insightray.pacs.fetch import fetch_study
    from insightray.serving.storage.db.models import Study
    from insightray.serving.storage.studies import ingest, study_json

    client = services.pacs.client()
    if not client.find_studies({"study_uid": study_uid}, limit=1):
        raise NotFoundError("study", "the PACS has no such study", "search it first")
    opened = []
    for image in fetch_study(client, study_uid):
        study, _ = ingest(services, who, image.data)
        findings = [
            {"label": r.label, "score": r.score, "box": list(r.box_px)} for r in image.regions
        ]
        with services.db.session() as session:
            row = session.get(Study, study.id)
            assert row is not None
            row.meta = {**row.meta, "sr_findings": findings}
            session.flush()
            session.expunge(row)
        opened.append(study_json(row, []))
    return opened

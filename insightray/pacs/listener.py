"""A C-STORE SCP: modalities and the PACS push studies to Insight Ray, which analyses them.

:class:`Listener` accepts associations only from the AE titles on its allow-list (others are
rejected at association time), de-identifies and seals every instance it receives into the
vault's inbox (:meth:`~insightray.pacs.vault.Vault.admit`: nothing identifying is written in
clear), answers *success* once the sealed file is on disk, and hands it to an
:class:`~insightray.pacs.pipeline.Analyst` on one worker thread, so slow models never hold up
a sender. It listens on loopback unless told otherwise.

Example:
    >>> listener = Listener(analyst, vault, port=11112, allowed=["ORTHANC"])  # doctest: +SKIP
    >>> listener.start(); listener.wait_idle(60); listener.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt

from insightray.errors import ConfigError, InsightRayError
from insightray.pacs.dimse import DEFAULT_AET, storage_contexts
from insightray.pacs.pipeline import Analyst, Outcome
from insightray.pacs.vault import Vault

__all__ = ["KEPT_OUTCOMES", "Listener"]

#: How many outcomes :attr:`Listener.outcomes` keeps (a listener runs for months).
KEPT_OUTCOMES = 10_000
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000
_STOP = Path()


class Listener:
    """A storage SCP feeding an analyst.

    Args:
        analyst: What runs on each received file (``None``: only store into the inbox).
        vault: De-identifies and seals each received instance into its inbox.
        host: Address to listen on (loopback by default).
        port: TCP port (0 is not allowed: peers must know it).
        ae_title: This node's AE title.
        allowed: Calling AE titles that may connect; ``None`` allows any (not advised).
        on_outcome: Called on the worker thread with each file's outcome.
        tls: A server TLS context (:func:`~insightray.pacs.dimse.tls_context`): DICOM over
            TLS only.

    A file that was sent, or copied to the dead-letter folder, is removed from the inbox; an
    unrouted one stays there. :attr:`outcomes` keeps the latest :data:`KEPT_OUTCOMES`.
    """

    def __init__(
        self,
        analyst: Analyst | None,
        vault: Vault,
        *,
        host: str = "127.0.0.1",
        port: int = 11112,
        ae_title: str = DEFAULT_AET,
        allowed: Sequence[str] | None = (),
        on_outcome: Callable[[Outcome], None] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if allowed is not None and not allowed:
            raise ConfigError("listener", "the AE-title allow-list is empty", "pass --allow AET")
        self.analyst = analyst
        self.vault = vault
        self.address = (host, port)
        self.ae_title = ae_title
        self.allowed = None if allowed is None else [title.strip() for title in allowed]
        self.outcomes: deque[Outcome] = deque(maxlen=KEPT_OUTCOMES)
        self.on_outcome = on_outcome
        self.tls = tls
        self.received = 0
        self._count = threading.Lock()
        self._queue: queue.Queue[Path] = queue.Queue()
        self._server: Any = None
        self._worker: threading.Thread | None = None

    @property
    def inbox(self) -> Path:
        """Where the sealed arrivals wait (the vault's inbox)."""
        return self.vault.inbox

    def _on_store(self, event: Any) -> int:
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            target = self.vault.admit(dataset)
        except InsightRayError:  # an instance that cannot be encoded: resending cannot help
            return _CANNOT_UNDERSTAND
        except Exception:  # any other failure to keep the instance: tell the sender to retry
            return _OUT_OF_RESOURCES
        with self._count:
            self.received += 1
        self._queue.put(target)
        return 0x0000

    def _work(self) -> None:
        while True:
            path = self._queue.get()
            try:
                if path == _STOP:
                    return
                if self.analyst is not None:
                    outcome = self.analyst.handle(path)
                    if outcome.status != "unrouted":  # sent, or copied to the dead letters
                        path.unlink(missing_ok=True)
                    self.outcomes.append(outcome)
                    if self.on_outcome is not None:
                        self.on_outcome(outcome)
            finally:
                self._queue.task_done()

    def start(self) -> None:
        """Start listening and the worker thread; returns at once."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = storage_contexts()
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification (C-ECHO)
        if self.allowed is not None:
            ae.require_calling_aet = self.allowed
        self._worker = threading.Thread(target=self._work, name="insightray-pacs", daemon=True)
        self._worker.start()
        self._server = ae.start_server(
            self.address,
            block=False,
            ssl_context=self.tls,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every received file has been handled; ``False`` if ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return self._queue.unfinished_tasks == 0

    def stop(self) -> None:
        """Stop listening, let the worker finish what it has, and return."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join()
            self._worker = None

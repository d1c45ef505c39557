"""DICOM (DIMSE) networking: C-STORE out (SCU) and the presentation contexts of the listener.

:func:`send_cstore` opens one association to a peer, stores the data sets in their own
transfer syntax (or uncompressed) and closes it. A refused or dropped association is a
:class:`~insightray.errors.ServiceUnavailableError`, a stored-with-failure status a
:class:`~insightray.errors.UpstreamError`; neither message holds identifiers from the data.

Example:
    >>> send_cstore([sr], host="127.0.0.1", port=4242, called_aet="ORTHANC")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context

from insightray.errors import ConfigError, ServiceUnavailableError, UpstreamError

__all__ = ["DEFAULT_AET", "send_cstore", "storage_contexts", "tls_context"]

#: Insight Ray's AE title unless told otherwise.
DEFAULT_AET = "INSIGHTRAY"
_SUCCESS = 0x0000
_WARNINGS = {0x0001, 0xB000, 0xB006, 0xB007}

# pynetdicom logs each association at INFO (peer AE titles and addresses only); keep it quiet.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def tls_context(
    *,
    server: bool,
    certificate: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
) -> ssl.SSLContext:
    """A TLS context for DICOM over TLS (TLS 1.2 or newer).

    Args:
        server: For the listener (``True``) or for sending (``False``).
        certificate: This side's certificate (PEM); required for the listener.
        key: Its private key (PEM); default: inside ``certificate``.
        ca: Certificates to trust (PEM). For the listener, giving it requires every sender to
            show a certificate it signed; for sending, the default is the system's store.

    Raises:
        ConfigError: A file is missing or not a usable certificate or key.
    """
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    try:
        context = ssl.create_default_context(purpose, cafile=None if ca is None else str(ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            context.load_cert_chain(str(certificate), None if key is None else str(key))
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            "TLS", f"the certificate, key or CA file cannot be used ({type(error).__name__})",
            "check the PEM files given",
        ) from None  # fmt: skip
    if server:
        if certificate is None:
            raise ConfigError("TLS", "the listener needs a certificate", "pass --tls-cert")
        context.verify_mode = ssl.CERT_REQUIRED if ca is not None else ssl.CERT_NONE
    return context


def storage_contexts() -> list[PresentationContext]:
    """Every storage SOP class, in every transfer syntax pynetdicom knows (listener side)."""
    return [
        build_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        for context in AllStoragePresentationContexts
    ]


def _requested(datasets: Sequence[Dataset]) -> list[PresentationContext]:
    contexts: dict[tuple[str, str], PresentationContext] = {}
    for dataset in datasets:
        syntax = str(dataset.file_meta.TransferSyntaxUID)
        key = (str(dataset.SOPClassUID), syntax)
        syntaxes = list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        contexts.setdefault(key, build_context(dataset.SOPClassUID, syntaxes))
    return list(contexts.values())


def send_cstore(
    datasets: Sequence[Dataset],
    *,
    host: str,
    port: int,
    called_aet: str,
    calling_aet: str = DEFAULT_AET,
    timeout_s: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> int:
    """C-STORE the data sets to a peer over one association; return how many it stored.

    ``tls`` (see :func:`tls_context`) sends over DICOM TLS, checking the peer's certificate
    against ``host``.

    Raises:
        ServiceUnavailableError: The association was refused, aborted or timed out.
        UpstreamError: The peer answered a C-STORE with a failure status.
    """
    peer = f"DICOM peer {called_aet}@{host}:{port}"
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.requested_contexts = _requested(datasets)
    association = ae.associate(
        host, port, ae_title=called_aet, tls_args=None if tls is None else (tls, host)
    )
    if not association.is_established:
        reason = "refused" if association.is_rejected else "not established"
        raise ServiceUnavailableError(
            peer,
            f"the association was {reason}",
            "check the peer's host, port and AE title, and that it accepts this AE title",
        )
    stored = 0
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            code = int(status.get("Status", -1)) if status else -1
            if code == -1:
                raise ServiceUnavailableError(
                    peer, "the connection dropped during C-STORE", "retry later"
                )
            if code != _SUCCESS and code not in _WARNINGS:
                raise UpstreamError(
                    peer, f"C-STORE failed with status 0x{code:04X}", "check the peer's log"
                )
            stored += 1
    finally:
        association.release()
    return stored

"""DICOM over TLS: the listener with a certificate takes TLS senders and turns plain ones away."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from insightray.errors import ConfigError, ServiceUnavailableError
from tests.pacs.orthanc import free_port

if TYPE_CHECKING:
    from insightray.pacs.vault import Vault

pytest.importorskip("pynetdicom")
x509 = pytest.importorskip("cryptography.x509")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_listener_takes_tls_and_refuses_plain(
    chest: Path, tmp_path: Path, vault: Vault
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import send_cstore, tls_context
    from insightray.pacs.listener import Listener

    cert, key = _self_signed(tmp_path)
    server = tls_context(server=True, certificate=cert, key=key)
    listener = Listener(None, vault, port=free_port(), allowed=["MODALITY"], tls=server)
    listener.start()
    try:
        image = read_dataset(chest)
        peer = {"host": "127.0.0.1", "port": listener.address[1], "called_aet": "INSIGHTRAY"}
        with pytest.raises(ServiceUnavailableError):
            send_cstore([image], calling_aet="MODALITY", timeout_s=5, **peer)  # type: ignore[arg-type]
        assert listener.received == 0
        with pytest.raises(ServiceUnavailableError):  # a certificate it does not trust
            untrusted = tls_context(server=False)
            send_cstore([image], calling_aet="MODALITY", tls=untrusted, **peer)  # type: ignore[arg-type]
        trusted = tls_context(server=False, ca=cert)
        assert send_cstore([image], calling_aet="MODALITY", tls=trusted, **peer) == 1  # type: ignore[arg-type]
        assert listener.wait_idle(30) and listener.received == 1
    finally:
        listener.stop()


def test_a_tls_listener_needs_a_usable_certificate(tmp_path: Path) -> None:
    from insightray.pacs.dimse import tls_context

    with pytest.raises(ConfigError, match="needs a certificate"):
        tls_context(server=True)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot be used"):
        tls_context(server=True, certificate=tmp_path / "junk.pem")


def test_routing_sends_srs_over_tls_and_a_bad_ca_dead_letters_at_once(
    chest: Path, tmp_path: Path, vault: Vault
) -> None:
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dimse import tls_context
    from insightray.pacs.listener import Listener
    from insightray.pacs.pipeline import Analyst
    from insightray.pacs.routing import routing_from_dict
    from insightray.pacs.vault import Vault
    from insightray.serving.storage.crypto import KeyRing

    cert, key = _self_signed(tmp_path)
    pacs_vault = Vault(tmp_path / "pacs", KeyRing([bytes(32)]), b"pacs salt")
    pacs = Listener(
        None, pacs_vault, port=free_port(), allowed=["INSIGHTRAY"],
        tls=tls_context(server=True, certificate=cert, key=key),
    )  # fmt: skip
    pacs.start()
    try:
        outcomes = []
        for ca in (cert, tmp_path / "missing-ca.pem"):
            peer = {"host": "127.0.0.1", "port": pacs.address[1], "aet": "PACS", "ca": str(ca)}
            rule = {"name": "tls", "task": "detection", "destination": {"cstore": peer}}
            routing = routing_from_dict(
                {"rules": [rule], "retry": {"attempts": 3}, "dead_letter": str(tmp_path / "dl")}
            )
            assert routing.rules[0].cstore is not None and routing.rules[0].cstore.tls
            analyst = Analyst(routing, vault, outbox=tmp_path / "out", sleep=lambda _: None)
            outcomes.append(analyst.handle(vault.admit(read_dataset(chest))))
        assert pacs.wait_idle(30)
    finally:
        pacs.stop()
    sent, failed = outcomes
    assert (sent.status, sent.attempts) == ("sent", 1)
    assert pacs.received == 1  # the SR arrived over TLS
    assert (failed.status, failed.attempts) == ("dead-letter", 1)
    assert "cannot be used" in failed.reason

"""TLS: the SuperLink serves HTTPS with certificates made by ``make_certificates``."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from insightray.federated.certificates import make_certificates
from insightray.federated.deployment import SuperLink, Tls, free_port

pytestmark = pytest.mark.slow


def _handshake(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version() or ""


def test_superlink_serves_tls_that_only_our_ca_verifies(tmp_path: Path) -> None:
    paths = make_certificates(tmp_path / "certs", ["localhost", "127.0.0.1"])
    assert oct(paths["key"].stat().st_mode & 0o777) == "0o600"
    link = SuperLink(tmp_path / "flower", port=free_port(), tls=Tls(**paths))
    try:
        trusting = ssl.create_default_context(cafile=str(paths["ca"]))
        assert _handshake(link.port, trusting).startswith("TLS")
        other = make_certificates(tmp_path / "other", ["127.0.0.1"])
        stranger = ssl.create_default_context(cafile=str(other["ca"]))
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(link.port, stranger)
    finally:
        link.stop()
    assert not link.alive()

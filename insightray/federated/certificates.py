"""TLS certificates for a federation: a private CA and the SuperLink's server certificate.

For tests and pilots; a hospital deployment uses certificates from its own PKI in the same
places (see docs/operations.md). Written with ``cryptography`` (the library Flower already
depends on): an EC P-256 CA, and a server certificate for the given host names and IP
addresses signed by it.

Example:
    >>> paths = make_certificates("certs", ["localhost", "127.0.0.1"])  # doctest: +SKIP
    >>> sorted(p.name for p in paths.values())  # doctest: +SKIP
    ['ca.pem', 'server.key', 'server.pem']
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

__all__ = ["make_certificates"]


def _name(common_name: str) -> object:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: str | Path, hosts: list[str], days: int = 30) -> dict[str, Path]:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` (0600) for ``hosts``.

    Returns:
        ``{"ca": ..., "cert": ..., "key": ...}``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Insight Ray federation CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)  # type: ignore[arg-type]
        .issuer_name(ca_name)  # type: ignore[arg-type]
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))  # type: ignore[arg-type]
        .issuer_name(ca_name)  # type: ignore[arg-type]
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": target / "ca.pem", "cert": target / "server.pem", "key": target / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths["key"].chmod(0o600)
    return paths


def make_site_keys(folder: str | Path, name: str) -> dict[str, Path]:
    """Write a site's SuperNode key pair: ``NAME`` (private, 0600) and ``NAME.pub``.

    An EC P-384 key in OpenSSH format, what Flower's SuperNode authentication reads: the
    site keeps the private key (``federated client --key``), the coordinator registers the
    public one (``federated server --site-keys``).

    Returns:
        ``{"private": ..., "public": ...}``.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    paths = {"private": target / name, "public": target / f"{name}.pub"}
    paths["private"].touch(mode=0o600)
    paths["private"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    paths["public"].write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + f" {name}\n".encode()
    )
    return paths

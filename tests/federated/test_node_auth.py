"""Site authentication: only SuperNodes whose public key the coordinator registered take part.

A real TLS SuperLink with Flower's SuperNode authentication, two SuperNodes as separate
processes on loopback: one signs with an authorised key and trains in the round, the other
(an unknown key) is refused at activation and exits.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from insightray.errors import ConfigError, FederatedRunError
from insightray.federated.certificates import make_certificates, make_site_keys
from insightray.federated.deployment import (
    SuperLink,
    SuperNode,
    Tls,
    free_port,
    register_site,
    site_key_files,
    submit_run,
)
from insightray.federated.results import read_rounds
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import site_folders

pytestmark = pytest.mark.slow


def test_site_keys_are_openssh_ec_pairs_and_folders_list_them(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_ssh_private_key,
        load_ssh_public_key,
    )

    paths = make_site_keys(tmp_path / "keys", "site_a")
    make_site_keys(tmp_path / "keys", "site_b")
    assert oct(paths["private"].stat().st_mode & 0o777) == "0o600"
    private = load_ssh_private_key(paths["private"].read_bytes(), None)
    public = load_ssh_public_key(paths["public"].read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert [p.name for p in site_key_files(tmp_path / "keys")] == ["site_a.pub", "site_b.pub"]
    assert site_key_files(paths["public"]) == [paths["public"]]
    with pytest.raises(ConfigError, match="federated keys"):
        site_key_files(tmp_path)
    with pytest.raises(ConfigError, match="TLS"):
        SuperLink(tmp_path / "flower", port=free_port(), site_keys=[paths["public"]])


def test_an_authorised_site_trains_and_an_unknown_key_is_refused(
    tiny_sites: Path, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs", ["localhost", "127.0.0.1"])
    tls = Tls(**certs)
    known = make_site_keys(tmp_path / "keys", "site_0")
    stranger = make_site_keys(tmp_path / "stranger", "stranger")
    home = tmp_path / "flower"
    link = SuperLink(home, port=free_port(), tls=tls, site_keys=[known["public"]])
    site = site_folders(tiny_sites)[0]
    nodes = []
    try:
        with pytest.raises(FederatedRunError, match="refused"):  # registering twice
            register_site(home, link.address, known["public"], tls=Tls(tls.ca))
        for name, key in (("known", known["private"]), ("stranger", stranger["private"])):
            config: dict[str, str | int] = {"data": str(site), "cache": str(tmp_path / name)}
            nodes.append(
                SuperNode(
                    home,
                    link.address,
                    config,
                    port=free_port(),
                    tls=Tls(tls.ca),
                    key=key,
                    name=name,
                )
            )
        deadline = time.monotonic() + 120
        while nodes[1].alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not nodes[1].alive(), "the unknown SuperNode should have been refused"
        assert b"Failed to activate SuperNode" in nodes[1].log_path.read_bytes()
        settings = FederatedSettings(
            image_size=32,
            batch_size=4,
            pretrained=False,
            augment=False,
            rounds=1,
            min_sites=1,
            max_site_images=16,
            round_timeout=300,
            out=str(tmp_path / "server"),
        )
        submit_run(
            home,
            link.address,
            {**settings.to_run_config(), "sites": 1},
            tls=Tls(tls.ca),
            timeout=900,
        )
    finally:
        for node in nodes:
            node.stop()
        link.stop()
    record = read_rounds(tmp_path / "server")["rounds"][0]
    assert record["replies"] == 1 and not record["skipped"]
    assert b"SuperNode ID" in nodes[0].log_path.read_bytes()

"""A real federation: a SuperLink and three SuperNodes as separate processes on loopback.

Tiny data (a few real fracture images per site, 32x32 input) keeps the training short; the
processes, the protocol and SecAgg+ are Flower's own. The SuperNodes talk to the SuperLink
through a recording TCP proxy, so the test can look at every byte that crossed the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from insightray.federated.deployment import SuperLink, SuperNode, free_port, submit_run
from insightray.federated.results import load_global, read_rounds
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import site_folders
from insightray.training.fracture.dataset import load_fracture_items
from tests.federated.conftest import SITES

pytestmark = pytest.mark.slow


class RecordingProxy:
    """Forwards loopback TCP connections to ``target`` and keeps a copy of every byte."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                with self.lock:
                    self.captured += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.running = False
        self.server.close()


def _settings(out: Path, **values: object) -> FederatedSettings:
    return FederatedSettings(
        image_size=32,
        batch_size=4,
        pretrained=False,
        augment=False,
        out=str(out),
        max_site_images=16,
        **values,  # type: ignore[arg-type]
    )


def _start_nodes(home: Path, address: str, sites: Path, audit: Path) -> list[SuperNode]:
    nodes = []
    for index, folder in enumerate(site_folders(sites)):
        config: dict[str, str | int] = {
            "data": str(folder),
            "cache": str(home / "cache" / folder.name),
            "audit": str(audit / folder.name),
            "seed": index,
            "threads": 1,
        }
        nodes.append(SuperNode(home, address, config, port=free_port(), name=folder.name))
    return nodes


def _sent(audit: Path, site: str, server_round: int) -> tuple[list[np.ndarray], int]:
    import json

    lines = (audit / site / "sent.jsonl").read_text().splitlines()
    weight = next(json.loads(x)["weight"] for x in lines if json.loads(x)["round"] == server_round)
    with np.load(audit / site / f"round_{server_round}.npz") as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))], weight


def test_secagg_two_rounds_aggregate_is_weighted_mean_and_no_images_cross(
    tiny_sites: Path, tmp_path: Path
) -> None:
    home, audit = tmp_path / "flower", tmp_path / "audit"
    link = SuperLink(home, port=free_port())
    proxy = RecordingProxy(link.port)
    nodes = _start_nodes(home, f"127.0.0.1:{proxy.port}", tiny_sites, audit)
    # FedBN too: in round 2 each site loads its own batch norm from Flower's node state.
    settings = _settings(
        tmp_path / "server", rounds=2, secagg=True, local_bn=True, round_timeout=600
    )
    try:
        submit_run(home, link.address, {**settings.to_run_config(), "sites": SITES}, timeout=1500)
    finally:
        for node in nodes:
            node.stop()
        link.stop()
        proxy.close()
    assert all(not node.alive() for node in nodes) and not link.alive()
    rounds = read_rounds(tmp_path / "server")
    assert [r["replies"] for r in rounds["rounds"]] == [SITES, SITES]
    updates, weights = zip(*(_sent(audit, f"site_{k}", 2) for k in range(SITES)), strict=True)
    assert list(weights) == [len(load_fracture_items(f)) for f in site_folders(tiny_sites)]
    final = load_global(tmp_path / "server")
    total = sum(weights)
    for index, array in enumerate(final):
        expected = sum(w * update[index] for w, update in zip(weights, updates, strict=True))
        # SecAgg+ quantises each value to 2**24 steps over its clipping range.
        np.testing.assert_allclose(array, expected / total, atol=2e-3)

    wire = bytes(proxy.captured)
    assert len(wire) > 100_000  # the model went both ways through the proxy
    for folder in site_folders(tiny_sites):
        assert str(folder).encode() not in wire  # not even the data's location
        for item in load_fracture_items(folder):
            raw = item.path.read_bytes()
            for start in (len(raw) // 4, len(raw) // 2, 3 * len(raw) // 4):
                assert raw[start : start + 32] not in wire
    # SecAgg+: no site's own update crosses the wire, only masked vectors.
    for update in updates:
        largest = max(update, key=lambda a: a.size)
        assert largest.astype(np.float32).tobytes()[64:128] not in wire


def test_a_site_killed_mid_round_does_not_stop_the_round(tiny_sites: Path, tmp_path: Path) -> None:
    home, audit = tmp_path / "flower", tmp_path / "audit"
    link = SuperLink(home, port=free_port())
    nodes = _start_nodes(home, link.address, tiny_sites, audit)
    settings = _settings(tmp_path / "server", rounds=1, min_sites=2, round_timeout=360)
    killer_done = threading.Event()

    def kill_when_training() -> None:
        log = nodes[-1].log_path
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if b"Start `flwr-clientapp` process" in log.read_bytes():
                nodes[-1].kill()
                break
            time.sleep(0.2)
        killer_done.set()

    threading.Thread(target=kill_when_training, daemon=True).start()
    try:
        submit_run(home, link.address, {**settings.to_run_config(), "sites": SITES}, timeout=1800)
    finally:
        killer_done.wait(5)
        for node in nodes:
            node.stop()
        link.stop()
    assert not nodes[-1].alive()
    record = read_rounds(tmp_path / "server")["rounds"][0]
    assert record["replies"] == SITES - 1 and not record["skipped"]
    assert not (audit / "site_2" / "sent.jsonl").exists()
    assert (tmp_path / "server" / "global.npz").is_file()

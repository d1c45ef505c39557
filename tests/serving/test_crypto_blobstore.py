"""Encryption at rest: the key ring, rotation and the content-addressed blob store."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from insightray.errors import ConfigError, NotFoundError, TamperedDataError
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.crypto import HEADER_BYTES, KeyRing, key_id, read_or_create_secret


def test_round_trip_binds_the_associated_data() -> None:
    ring = KeyRing([os.urandom(32)])
    sealed = ring.encrypt(b"pixels", aad=b"a")
    assert b"pixels" not in sealed and len(sealed) == HEADER_BYTES + 6 + 16
    assert ring.decrypt(sealed, aad=b"a") == b"pixels"
    assert ring.encrypt(b"pixels", aad=b"a") != sealed  # fresh nonce each time
    with pytest.raises(TamperedDataError):
        ring.decrypt(sealed, aad=b"b")


@pytest.mark.parametrize("position", [0, 5, HEADER_BYTES - 1, HEADER_BYTES + 2, -1])
def test_any_flipped_bit_is_detected(position: int) -> None:
    ring = KeyRing([os.urandom(32)])
    sealed = bytearray(ring.encrypt(b"x" * 100))
    sealed[position] ^= 0x01
    with pytest.raises((TamperedDataError, ConfigError)):
        ring.decrypt(bytes(sealed))


def test_truncated_blobs_are_detected() -> None:
    ring = KeyRing([os.urandom(32)])
    sealed = ring.encrypt(b"x" * 100)
    for cut in (3, HEADER_BYTES, len(sealed) - 1):
        with pytest.raises(TamperedDataError):
            ring.decrypt(sealed[:cut])


def test_key_file_created_once_private_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "data.key"
    ring = KeyRing.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old_blob = ring.encrypt(b"old")
    old_id = ring.primary_id
    assert KeyRing.from_file(path).primary_id == old_id  # not replaced on reopen
    other_process_ring = KeyRing.from_file(path)
    new_id = ring.rotate()
    assert new_id != old_id and ring.key_ids == [old_id, new_id]
    assert KeyRing.blob_key_id(ring.encrypt(b"new")) == new_id
    assert ring.decrypt(old_blob) == b"old"
    # A ring opened before the rotation switches to the new primary and reads new blobs.
    assert KeyRing.blob_key_id(other_process_ring.encrypt(b"later")) == new_id
    assert other_process_ring.decrypt(ring.encrypt(b"new")) == b"new"


def test_keys_from_the_environment(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    value = ",".join(base64.b64encode(key).decode() for key in (old, new))
    ring = KeyRing.from_settings(ServeSettings(home=tmp_path, data_key=value))
    assert ring.primary_id == key_id(new) and ring.decrypt(KeyRing([old]).encrypt(b"a")) == b"a"
    with pytest.raises(ConfigError, match="environment"):
        ring.rotate()
    with pytest.raises(ConfigError, match="not in the key ring"):
        KeyRing([new]).decrypt(KeyRing([old]).encrypt(b"a"))
    for bad in ("not base64!", base64.b64encode(b"short").decode(), " , "):
        with pytest.raises(ConfigError):
            KeyRing.from_settings(ServeSettings(home=tmp_path, data_key=bad))
    assert not (tmp_path / "keys" / "data.key").exists()


def test_secret_creation_races_between_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from insightray.serving.storage.crypto import read_or_create_secret; "
        "sys.stdout.write(read_or_create_secret(Path(sys.argv[1])).hex())"
    )
    target = tmp_path / "keys" / "salt"
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = {run.communicate(timeout=60)[0].decode() for run in runs}
    assert outputs == {read_or_create_secret(target).hex()} and len(outputs.pop()) == 64


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store", KeyRing.from_file(tmp_path / "keys" / "data.key"))


def test_store_is_content_addressed_encrypted_and_idempotent(store: BlobStore) -> None:
    data = b"\x00DICM patient pixels" * 100
    name = store.put(data)
    assert name == hashlib.sha256(data).hexdigest()
    path = store.path(name)
    assert path.parent.parent.parent == store.root and data not in path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert store.put(data) == name and path.stat().st_mtime_ns == mtime
    assert store.get(name) == data and store.exists(name)
    assert list(store.names()) == [name]
    assert not list(store.root.rglob("*.tmp"))
    assert store.delete(name) and not store.exists(name) and not store.delete(name)
    with pytest.raises(NotFoundError):
        store.get(name)


def test_store_detects_tampering_and_swapped_files(store: BlobStore) -> None:
    first, second = store.put(b"first image"), store.put(b"second image")
    store.path(first).write_bytes(store.path(second).read_bytes())  # swapped content
    with pytest.raises(TamperedDataError):
        store.get(first)
    sealed = bytearray(store.path(second).read_bytes())
    sealed[-5] ^= 0xFF
    store.path(second).write_bytes(bytes(sealed))
    with pytest.raises(TamperedDataError):
        store.get(second)


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "abc", ""])
def test_store_rejects_names_that_are_not_digests(store: BlobStore, name: str) -> None:
    with pytest.raises(NotFoundError):
        store.get(name)


def test_rewrap_moves_every_blob_to_the_new_key(store: BlobStore) -> None:
    names = [store.put(f"image {i}".encode()) for i in range(5)]
    old_id = store.keyring.primary_id
    store.keyring.rotate()
    assert store.rewrap() == 5 and store.rewrap() == 0
    assert {KeyRing.blob_key_id(store.path(n).read_bytes()) for n in names} == {
        store.keyring.primary_id
    }
    # Retire the old key: everything still opens with the new one alone.
    key_file = store.keyring.source
    assert key_file is not None
    key_file.write_text(key_file.read_text().splitlines()[-1] + "\n")
    fresh = BlobStore(store.root, KeyRing.from_file(key_file))
    assert old_id not in fresh.keyring.key_ids
    assert [fresh.get(n) for n in names] == [f"image {i}".encode() for i in range(5)]

"""Encryption at rest: an AES-256-GCM key ring with key ids, so keys can be rotated.

Every encrypted blob starts with a 20-byte header: the format tag ``IRE1``, the 4-byte id
of the key that sealed it and the 12-byte random nonce; then the ciphertext and the GCM tag.
The caller's ``aad`` (associated data, e.g. the blob's name) is authenticated too, so a blob
moved under another name fails to decrypt. A key's id is derived from the key itself.

Where the keys come from:

- ``INSIGHTRAY_DATA_KEY``: one or more base64-encoded 32-byte keys, comma-separated, the
  primary (used to encrypt) last. Use this with a secret manager.
- otherwise ``$INSIGHTRAY_HOME/keys/data.key``: one base64 key per line, primary last,
  created with one fresh key (mode 0600) on first use.

Decryption uses whichever key the header names, so old data stays readable while new data
is sealed with the primary key.

Rotating keys (operator guide):

1. ``insightray keys rotate`` appends a fresh key to ``data.key`` and makes it the primary
   (:meth:`KeyRing.rotate`), then re-encrypts every stored blob with it
   (:meth:`insightray.serving.storage.blobstore.BlobStore.rewrap`). Running services notice the
   changed key file before their next encryption and switch to the new primary; no
   restart is needed.
2. With ``INSIGHTRAY_DATA_KEY`` instead: generate a key (``python -c "import base64, os;
   print(base64.b64encode(os.urandom(32)).decode())"``), set the variable to ``OLD,NEW``
   for every replica, restart them, then run ``insightray keys rotate --rewrap-only``.
3. Before deleting an old key, run ``insightray keys rotate --rewrap-only`` once more: it
   must report 0 blobs re-encrypted (a blob written during the first pass is caught here).
   Keep a copy of every key that sealed a backup of the store you may need to restore.

Example:
    >>> ring = KeyRing([bytes(32)])
    >>> ring.decrypt(ring.encrypt(b"pixels", aad=b"name"), aad=b"name")
    b'pixels'
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from insightray.errors import ConfigError, TamperedDataError
from insightray.fsutil import atomic_write

if TYPE_CHECKING:
    from insightray.serving.settings import ServeSettings

__all__ = ["HEADER_BYTES", "KEY_BYTES", "KeyRing", "key_id", "read_or_create_secret"]

KEY_BYTES = 32
_MAGIC = b"IRE1"
_NONCE_BYTES = 12
HEADER_BYTES = len(_MAGIC) + 4 + _NONCE_BYTES


def key_id(key: bytes) -> str:
    """The 8-hex-digit id of a key (a hash of it; reveals nothing useful about the key)."""
    return hashlib.sha256(b"insightray data key id:" + key).hexdigest()[:8]


def read_or_create_secret(path: Path, size: int = KEY_BYTES) -> bytes:
    """The bytes in ``path``, or ``size`` fresh random bytes written there (mode 0600).

    Creation is atomic and safe when several processes start at once: the first one to
    link its fully written file wins, the others read it.
    """
    if not path.exists():
        _create_exclusive(path, secrets.token_bytes(size))
    return path.read_bytes()


def _create_exclusive(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless it exists; never leaves a partial file there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won; its file is whole
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _decode_keys(text: str, source: str) -> list[bytes]:
    keys = []
    for entry in text.replace(",", "\n").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            key = base64.b64decode(entry, validate=True)
        except binascii.Error as error:
            raise ConfigError(source, "a key is not valid base64", "fix or replace it") from error
        if len(key) != KEY_BYTES:
            raise ConfigError(source, f"a key has {len(key)} bytes, not 32", "use AES-256 keys")
        keys.append(key)
    if not keys:
        raise ConfigError(source, "no data key found", "add a base64-encoded 32-byte key")
    return keys


class KeyRing:
    """AES-256-GCM keys: encrypt with the primary (the last), decrypt with any.

    Args:
        keys: Raw 32-byte keys, primary last.
        source: The key file, when the keys came from one (enables :meth:`rotate` and
            reloading when a blob names a key added by another process).
    """

    def __init__(self, keys: Sequence[bytes], *, source: Path | None = None) -> None:
        if not keys or any(len(key) != KEY_BYTES for key in keys):
            raise ConfigError("data keys", "need at least one 32-byte key", "check the key file")
        self.source = source
        self._state = self._build(keys)  # (ciphers by key id, primary id), swapped atomically
        self._stamp = self._source_stamp()

    @staticmethod
    def _build(keys: Sequence[bytes]) -> tuple[dict[str, AESGCM], str]:
        return {key_id(key): AESGCM(key) for key in keys}, key_id(keys[-1])

    @property
    def primary_id(self) -> str:
        """Id of the key that seals new data."""
        return self._state[1]

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """Keys from ``path`` (created with one fresh key on first use, mode 0600)."""
        if not path.exists():
            _create_exclusive(path, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        return cls(_decode_keys(path.read_text(encoding="ascii"), str(path)), source=path)

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> KeyRing:
        """``settings.data_key`` (``INSIGHTRAY_DATA_KEY``) if set, else ``keys_dir/data.key``."""
        if settings.data_key:
            return cls(_decode_keys(settings.data_key, "INSIGHTRAY_DATA_KEY"))
        return cls.from_file(settings.keys_dir / "data.key")

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key in the ring."""
        return list(self._state[0])

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Seal ``plaintext`` with the primary key; ``aad`` must be given again to decrypt."""
        if self.source is not None and self._source_stamp() != self._stamp:
            self.reload()  # rotated by another process
        ciphers, primary = self._state
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = ciphers[primary].encrypt(nonce, plaintext, aad)
        return _MAGIC + bytes.fromhex(primary) + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Open a blob sealed by :meth:`encrypt` with any key of the ring.

        Raises:
            TamperedDataError: The blob was altered, truncated, or ``aad`` differs.
            ConfigError: The blob names a key that is not in the ring.
        """
        if len(blob) < HEADER_BYTES + 16 or not blob.startswith(_MAGIC):
            raise TamperedDataError("encrypted blob", "the header is damaged", "restore a backup")
        blob_key = self.blob_key_id(blob)
        if blob_key not in self._state[0] and self.source is not None:
            self.reload()
        cipher = self._state[0].get(blob_key)
        if cipher is None:
            raise ConfigError(
                f"data key {blob_key}", "not in the key ring", "restore the retired key"
            )
        nonce = blob[len(_MAGIC) + 4 : HEADER_BYTES]
        try:
            return cipher.decrypt(nonce, blob[HEADER_BYTES:], aad)
        except InvalidTag as error:
            raise TamperedDataError(
                "encrypted blob", "it fails authentication (altered or swapped)", "restore a backup"
            ) from error

    @staticmethod
    def blob_key_id(blob: bytes) -> str:
        """The id of the key that sealed ``blob``."""
        return blob[len(_MAGIC) : len(_MAGIC) + 4].hex()

    def reload(self) -> None:
        """Re-read the key file (keys added by ``rotate`` in another process)."""
        if self.source is None:
            return
        stamp = self._source_stamp()
        keys = _decode_keys(self.source.read_text(encoding="ascii"), str(self.source))
        self._state = self._build(keys)
        self._stamp = stamp

    def _source_stamp(self) -> tuple[int, int] | None:
        """The key file's identity and modification time (changes when it is replaced)."""
        if self.source is None:
            return None
        status = self.source.stat()
        return status.st_ino, status.st_mtime_ns

    def rotate(self) -> str:
        """Append a fresh key to the key file, make it the primary, return its id.

        Raises:
            ConfigError: The keys came from ``INSIGHTRAY_DATA_KEY`` (rotate them there).
        """
        if self.source is None:
            raise ConfigError(
                "INSIGHTRAY_DATA_KEY",
                "keys from the environment cannot be rotated here",
                "append a new key to the variable (primary last) and restart",
            )
        old = self.source.read_text(encoding="ascii").rstrip("\n")
        new = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
        atomic_write(self.source, f"{old}\n{new}\n".encode("ascii"))
        self.reload()
        return self.primary_id

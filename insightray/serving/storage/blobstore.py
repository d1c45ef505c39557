"""A content-addressed, encrypted file store for images and results.

A blob is named by the SHA-256 of its plaintext and kept at ``root/ab/cd/<sha256>``,
sealed with the key ring (the name is the associated data, so a file copied over another
name fails to open). Writes are atomic and durable (temporary file, fsync, rename, fsync of
the folder), so write the blob before committing the database row that names it: after a
crash a row never points at a missing or partial file. Putting the same bytes twice stores
them once.

Example:
    >>> import tempfile
    >>> store = BlobStore(Path(tempfile.mkdtemp()), KeyRing([bytes(32)]))
    >>> name = store.put(b"pixels")
    >>> store.get(name), store.exists(name)
    (b'pixels', True)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from insightray.errors import NotFoundError, TamperedDataError
from insightray.fsutil import atomic_write, fsync_dir
from insightray.serving.storage.crypto import KeyRing

__all__ = ["BlobStore", "sha256_hex"]

_NAME = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Encrypted blobs under ``root``, named by the SHA-256 of their plaintext.

    Args:
        root: The store folder (created on first write).
        keyring: Seals new blobs with its primary key, opens blobs sealed with any of them.
    """

    def __init__(self, root: Path, keyring: KeyRing) -> None:
        self.root = root
        self.keyring = keyring

    def path(self, sha256: str) -> Path:
        """Where a blob lives.

        Raises:
            NotFoundError: ``sha256`` is not a 64-digit lowercase hex name.
        """
        if not _NAME.fullmatch(sha256):
            raise NotFoundError("blob", "the name is not a SHA-256 hex digest", "check the id")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (no-op when already stored) and return its SHA-256."""
        name = sha256_hex(data)
        target = self.path(name)
        if target.exists():
            return name
        self._make_folders(target.parent)
        atomic_write(target, self.keyring.encrypt(data, aad=name.encode()))
        return name

    def get(self, sha256: str) -> bytes:
        """The plaintext of a blob.

        Raises:
            NotFoundError: No such blob.
            TamperedDataError: The file was altered, truncated or renamed.
        """
        try:
            sealed = self.path(sha256).read_bytes()
        except FileNotFoundError as error:
            raise NotFoundError(
                f"blob {sha256[:12]}", "not in the store", "check the id"
            ) from error
        data = self.keyring.decrypt(sealed, aad=sha256.encode())
        if sha256_hex(data) != sha256:
            raise TamperedDataError(
                f"blob {sha256[:12]}", "content does not match its name", "restore a backup"
            )
        return data

    def exists(self, sha256: str) -> bool:
        """Whether a blob is stored."""
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove a blob durably; returns whether it existed. Callers check that no other
        row still names the same content (identical uploads share one blob)."""
        target = self.path(sha256)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(target.parent)
        return True

    def names(self) -> Iterator[str]:
        """Every stored blob name."""
        for path in self.root.glob("??/??/*"):
            if _NAME.fullmatch(path.name):
                yield path.name

    def rewrap(self) -> int:
        """Re-encrypt every blob not sealed with the primary key; returns how many.

        Run it after :meth:`KeyRing.rotate`; afterwards old keys can be retired.
        """
        count = 0
        for name in self.names():
            target = self.path(name)
            sealed = target.read_bytes()
            if KeyRing.blob_key_id(sealed) == self.keyring.primary_id:
                continue
            data = self.keyring.decrypt(sealed, aad=name.encode())
            atomic_write(target, self.keyring.encrypt(data, aad=name.encode()))
            count += 1
        return count

    def _make_folders(self, folder: Path) -> None:
        """Create ``root/ab/cd`` and make each new folder entry durable."""
        missing = [p for p in (self.root, folder.parent, folder) if not p.is_dir()]
        for path in missing:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_dir(path.parent)

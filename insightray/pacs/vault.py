"""Arrivals at rest: de-identified and encrypted on ingest, their identity sealed beside them.

An instance that arrives from a PACS (C-STORE into the listener, or WADO-RS by ``pacs pull``)
is handled as an upload is: de-identified at once (:func:`insightray.imaging.deid.deidentify`,
PS3.15 Basic Profile, with the site's salt, so the same study gets the same replacement UIDs
whether it was uploaded or received) and written only in encrypted form (AES-256-GCM). What
lies in the inbox, the outbox and the dead-letter folder is sealed; the plain data set exists
only in memory.

Each arrival is one sealed file, ``<sop>.ir``, where ``<sop>`` is a hash of the *replacement*
SOP Instance UID (keyed by the salt: it reveals nothing without it). It holds the
de-identified Part 10 file, which the models read, and the original header (no pixels),
which is opened only for two things: matching the routing rules (the Basic Profile removes
the series description, a rule key) and restoring the identifiers of the SR on its way out
to the PACS (:meth:`Vault.restore`, :func:`insightray.imaging.deid.restore_identity`), so
that the PACS files the SR beside the image it came from.

Layering: ``pacs`` sits below ``serving`` and must not import it, so the encryption key and
the salt are injected. The CLI and the service pass the service's own key ring
(:class:`insightray.serving.storage.crypto.KeyRing`, which satisfies :class:`Sealer`) and
site salt (:func:`insightray.serving.storage.pseudonyms.site_salt`): one set of keys, rotated
with ``insightray keys rotate``, covers uploads and arrivals alike.

Example:
    >>> vault = Vault(Path("inbox"), keyring, salt)  # doctest: +SKIP
    >>> arrival = vault.open(vault.admit(dataset))  # doctest: +SKIP
    >>> str(arrival.header().PatientName)  # doctest: +SKIP
    ''
"""

from __future__ import annotations

import copy
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset

from insightray.errors import TamperedDataError
from insightray.fsutil import atomic_write
from insightray.imaging.deid import deidentify, encode_dataset, restore_identity
from insightray.imaging.dicom import read_dataset

__all__ = ["ARRIVAL_SUFFIX", "Arrival", "Sealer", "Vault", "sop_hash"]

#: The suffix of a sealed arrival in the inbox.
ARRIVAL_SUFFIX = ".ir"
_MAGIC = b"IRPA1"
_LENGTH = struct.Struct(">Q")
_BULK_TAGS = 0x7FE00000  # Pixel Data and what follows it: not part of the identity header


def sop_hash(uid: str) -> str:
    """A short, stable stand-in for a UID in file names and logs (UIDs can identify a study)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


class Sealer(Protocol):
    """Authenticated encryption with associated data, as
    :class:`insightray.serving.storage.crypto.KeyRing` provides."""

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Seal ``plaintext``; ``aad`` must be given again to open it."""

    def decrypt(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Open a sealed blob (raises on tampering or another ``aad``)."""


@dataclass(frozen=True)
class Arrival:
    """One opened arrival (in memory only).

    Attributes:
        sop: Its file-name hash (safe to log).
        image: The de-identified DICOM file (Part 10 bytes).
        identity: The original header, without pixels. Patient data: never log it.
    """

    sop: str
    image: bytes
    identity: Dataset

    def header(self) -> Dataset:
        """The de-identified header (no pixels read)."""
        return read_dataset(self.image, header_only=True, name="arrival")


def _identity(dataset: Dataset) -> Dataset:
    """The header of ``dataset`` without its pixel data (elements before (7FE0,0010))."""
    header = Dataset()
    for element in dataset:
        if int(element.tag) < _BULK_TAGS:
            header.add(copy.deepcopy(element))
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        header.file_meta = copy.deepcopy(meta)
    return header


class Vault:
    """Sealed arrivals in ``inbox``, and sealed files anywhere (outbox, dead letters).

    Args:
        inbox: Where arrivals are kept until handled (created on first use, mode 0700).
        sealer: Encrypts and authenticates; the file's name is the associated data, so a
            sealed file renamed or swapped fails to open. Names are kept when files move.
        salt: The site's de-identification salt (keys the replacement UIDs).
    """

    def __init__(self, inbox: Path, sealer: Sealer, salt: bytes) -> None:
        self.inbox = inbox
        self._sealer = sealer
        self._salt = salt

    def write(self, path: Path, data: bytes) -> Path:
        """Seal ``data`` into ``path`` (atomically, mode 0600) and return ``path``."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, self._sealer.encrypt(data, aad=path.name.encode()))
        return path

    def read(self, path: Path) -> bytes:
        """The plaintext of a file :meth:`write` sealed.

        Raises:
            TamperedDataError: The file was altered, truncated or renamed.
        """
        return self._sealer.decrypt(path.read_bytes(), aad=path.name.encode())

    def admit(self, dataset: Dataset) -> Path:
        """De-identify ``dataset`` and seal it, with its original header, into the inbox.

        Returns:
            The sealed file, ``inbox/<sop>.ir``.

        Raises:
            CorruptFileError: The data set cannot be encoded (a damaged instance).
        """
        clean = deidentify(dataset, salt=self._salt)
        image = encode_dataset(clean, "arrival")
        identity = encode_dataset(_identity(dataset), "arrival")
        sop = sop_hash(str(clean.get("SOPInstanceUID", "")))
        payload = _MAGIC + _LENGTH.pack(len(identity)) + identity + image
        return self.write(self.inbox / f"{sop}{ARRIVAL_SUFFIX}", payload)

    def open(self, path: Path) -> Arrival:
        """Open an arrival :meth:`admit` sealed (wherever it now lies, under its name).

        Raises:
            TamperedDataError: The file was altered, renamed, or is not an arrival.
        """
        payload = self.read(path)
        start = len(_MAGIC) + _LENGTH.size
        if not payload.startswith(_MAGIC) or len(payload) < start:
            raise TamperedDataError(path.name, "it is not a sealed arrival", "remove it")
        (size,) = _LENGTH.unpack(payload[len(_MAGIC) : start])
        identity = read_dataset(payload[start : start + size], header_only=True, name="identity")
        sop = path.name.removesuffix(ARRIVAL_SUFFIX)
        return Arrival(sop, payload[start + size :], identity)

    def restore(self, document: Dataset, arrival: Arrival) -> Dataset:
        """``document`` (made from the arrival's de-identified image) with the original
        patient and study identifiers and UIDs back, for the PACS the arrival came from."""
        return restore_identity(document, arrival.identity, salt=self._salt)

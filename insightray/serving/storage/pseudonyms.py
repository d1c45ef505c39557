"""The service's side of de-identification: the site's salt and the pseudonym map.

The de-identification itself (PS3.15 Basic Profile) is :mod:`insightray.imaging.deid`.
Here live the secret salt that keys its replacement UIDs and pseudonyms, and the
encrypted pseudonym -> patient ID map kept when ``ServeSettings.pseudonym_map`` is on.

Example:
    >>> salt = site_salt(settings.keys_dir)  # doctest: +SKIP
    >>> with db.session() as session:  # doctest: +SKIP
    ...     pseudonym = remember_pseudonym(session, keyring, "MRN-1", salt)
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from insightray.imaging.deid import pseudonym_for
from insightray.serving.storage.crypto import KeyRing, read_or_create_secret
from insightray.serving.storage.db import PseudonymMap, utc_now

__all__ = ["remember_pseudonym", "site_salt"]


def site_salt(keys_dir: Path) -> bytes:
    """This site's de-identification salt: ``keys_dir/deid.salt``, created on first use."""
    return read_or_create_secret(keys_dir / "deid.salt")


def remember_pseudonym(session: Session, keyring: KeyRing, patient_id: str, salt: bytes) -> str:
    """Record pseudonym -> encrypted patient ID (once) and return the pseudonym.

    Only call this when the pseudonym map is configured (``ServeSettings.pseudonym_map``).
    """
    pseudonym = pseudonym_for(patient_id, salt)
    if session.get(PseudonymMap, pseudonym) is None:
        sealed = keyring.encrypt(patient_id.encode("utf-8"), aad=pseudonym.encode("ascii"))
        session.add(PseudonymMap(pseudonym=pseudonym, patient_ref=sealed, created_at=utc_now()))
        session.flush()
    return pseudonym

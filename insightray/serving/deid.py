"""De-identification of DICOM uploads: the PS3.15 Basic Application Level Confidentiality
Profile, applied on ingest.

Every attribute of Table E.1-1 (:data:`~insightray.serving.deid_profile.BASIC_PROFILE`) is
removed, emptied or given a dummy value per its action code, at every nesting level; UIDs
are replaced by ``2.25.`` UIDs derived from a secret salt, so one study's instances stay
linked across uploads without revealing the originals; private attributes and the curve
and overlay groups are removed. The result carries ``PatientIdentityRemoved = YES``,
``DeidentificationMethod`` and the code 113100 (Basic Application Confidentiality Profile).
Pixel data is not changed: images with text burned into the pixels need a separate review.

Composite codes are resolved without the IOD's attribute types, always keeping a
conformant object: ``X/Z`` -> empty, anything allowing ``D`` -> dummy, ``X/Z/U*`` (image
reference sequences) -> kept with their UIDs replaced.

No library fitted: ``dicognito`` replaces identifiers with realistic fake values and shifts
dates (not the table's actions), ``deid`` needs hand-written recipes; the table here is a
direct transcription and the code applies it with pydicom.

A pseudonym, when configured, replaces the emptied Patient Name and Patient ID (allowed by
action Z, "or a dummy value"); :func:`remember_pseudonym` keeps the mapping encrypted.

Example:
    >>> from pydicom import examples
    >>> clean = deidentify(examples.ct, salt=b"secret salt")
    >>> str(clean.PatientName), clean.PatientIdentityRemoved
    ('', 'YES')
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import uuid
from functools import cache
from io import BytesIO
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from sqlalchemy.orm import Session

from insightray.errors import CorruptFileError, UnsupportedFormatError
from insightray.serving.deid_profile import BASIC_PROFILE
from insightray.serving.storage.crypto import KeyRing, read_or_create_secret
from insightray.serving.storage.db import PseudonymMap, utc_now

__all__ = [
    "DEIDENTIFICATION_METHOD",
    "deidentify",
    "deidentify_bytes",
    "pseudonym_for",
    "remember_pseudonym",
    "site_salt",
]

DEIDENTIFICATION_METHOD = "Insight Ray: DICOM PS3.15 Table E.1-1 Basic Profile"
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR = {
    "PN": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "DS": "0",
    "IS": "0",
    "AS": "000Y",
}
_TEXT_VRS = {
    "AE",
    "AS",
    "CS",
    "DA",
    "DS",
    "DT",
    "IS",
    "LO",
    "LT",
    "PN",
    "SH",
    "ST",
    "TM",
    "UC",
    "UI",
    "UR",
    "UT",
}


def _resolve(code: str) -> str:
    """One concrete action for a (possibly composite) Basic Profile code."""
    if code.endswith("U*"):
        return "U*"
    if "D" in code.split("/"):
        return "D"
    if "Z" in code.split("/"):
        return "Z"
    return code


@cache
def _actions() -> dict[int, str]:
    """Tag -> concrete action, built once from the profile table."""
    actions = {}
    for keyword, code in BASIC_PROFILE.items():
        tag = tag_for_keyword(keyword)
        if tag is None:  # pragma: no cover - guarded by a test over the whole table
            raise KeyError(keyword)
        actions[int(tag)] = _resolve(code)
    return actions


def _new_uid(uid: str, salt: bytes) -> str:
    """A ``2.25.`` UID (a name-based UUID as an integer) keyed by the salt: the same input
    always maps to the same output. pydicom's ``generate_uid`` ignores its entropy sources
    for the ``2.25`` form, hence the few lines here."""
    digest = hmac.new(salt, uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=5).int}"


def _dummy(element: DataElement, salt: bytes) -> object:
    if element.VR == "UI":
        return _new_uid(str(element.value), salt)
    if element.VR in _TEXT_VRS:
        return _DUMMY_BY_VR.get(element.VR, _DUMMY_TEXT)
    return None


def _empty(element: DataElement) -> object:
    if element.VR == "SQ":
        return Sequence()
    return "" if element.VR in _TEXT_VRS else None


def _replace_uids(element: DataElement, salt: bytes) -> None:
    if element.VM > 1:
        element.value = [_new_uid(str(uid), salt) for uid in element.value]
    elif element.value:
        element.value = _new_uid(str(element.value), salt)


def _is_curve_or_overlay(tag: int) -> bool:
    group = tag >> 16
    return (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and group % 2 == 0


def _clean(dataset: Dataset, salt: bytes) -> None:
    """Apply the profile to ``dataset`` and, recursively, to every sequence item."""
    actions = _actions()
    for element in list(dataset):
        tag = int(element.tag)
        if _is_curve_or_overlay(tag):
            del dataset[tag]
            continue
        action = actions.get(tag)
        if action == "X":
            del dataset[tag]
        elif action == "Z":
            element.value = _empty(element)
        elif action == "U":
            _replace_uids(element, salt)
        elif action == "D" and element.VR != "SQ":
            element.value = _dummy(element, salt)
        elif element.VR == "SQ":  # kept, "D" or "U*" sequences: clean their items
            for item in element.value:
                _clean(item, salt)


def deidentify(dataset: Dataset, *, salt: bytes, pseudonym: str | None = None) -> Dataset:
    """A de-identified copy of ``dataset`` (the input is left unchanged).

    Args:
        dataset: A DICOM data set (with or without file meta information).
        salt: Secret bytes keying the replacement UIDs; keep it stable per site.
        pseudonym: Put this in Patient Name and Patient ID instead of empty values.
    """
    clean = copy.deepcopy(dataset)
    clean.remove_private_tags()
    _clean(clean, salt)
    if pseudonym is not None:
        clean.PatientName = pseudonym
        clean.PatientID = pseudonym
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    clean.DeidentificationMethodCodeSequence = Sequence([code])
    clean.LongitudinalTemporalInformationModified = "REMOVED"
    meta = getattr(clean, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in clean:
        meta.MediaStorageSOPInstanceUID = clean.SOPInstanceUID
    return clean


def deidentify_bytes(data: bytes, *, salt: bytes, pseudonym: str | None = None) -> bytes:
    """De-identify an encoded DICOM file (Part 10) and encode it again.

    pydicom stops quietly at a cut inside the data set, so a truncated file comes back
    without its pixels; decoding the image afterwards reports that as a typed error.

    Raises:
        UnsupportedFormatError: The bytes are not DICOM.
        CorruptFileError: The DICOM file is damaged beyond reading.
    """
    try:
        dataset = dcmread(BytesIO(data))
        dataset.remove_private_tags()  # forces every element to parse before cleaning
    except InvalidDicomError as error:
        raise UnsupportedFormatError("upload", "it is not a DICOM file", "send a .dcm") from error
    except Exception as error:  # pydicom raises many types on damaged input
        raise CorruptFileError("upload", "the DICOM file is damaged", "re-export it") from error
    clean = deidentify(dataset, salt=salt, pseudonym=pseudonym)
    buffer = BytesIO()
    try:
        clean.save_as(buffer, enforce_file_format=True)
    except Exception as error:
        raise CorruptFileError(
            "upload", "the DICOM file cannot be re-encoded", "re-export it"
        ) from error
    return buffer.getvalue()


def site_salt(keys_dir: Path) -> bytes:
    """This site's de-identification salt: ``keys_dir/deid.salt``, created on first use."""
    return read_or_create_secret(keys_dir / "deid.salt")


def pseudonym_for(patient_id: str, salt: bytes) -> str:
    """A stable pseudonym (``IR-`` + 20 hex digits of an HMAC) for a patient ID."""
    digest = hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"IR-{digest[:20]}"


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

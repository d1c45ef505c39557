"""De-identification of DICOM data sets: the PS3.15 Basic Application Level
Confidentiality Profile, applied to uploads on ingest.

Every attribute of Table E.1-1 (:data:`BASIC_PROFILE`, read from the package resource
``resources/deid_basic_profile.json``) is removed, emptied or given a dummy value per its
action code, at every nesting level; UIDs are replaced by ``2.25.`` UIDs derived from a
secret salt, so one study's instances stay linked across uploads without revealing the
originals; private attributes and the curve and overlay groups are removed. The result
carries ``PatientIdentityRemoved = YES``, ``DeidentificationMethod`` and the code 113100
(Basic Application Confidentiality Profile). Pixel data is not changed: images with text
burned into the pixels need a separate review.

Composite codes are resolved without the IOD's attribute types, always keeping a
conformant object: ``X/Z`` -> empty, anything allowing ``D`` -> dummy, ``X/Z/U*`` (image
reference sequences) -> kept with their UIDs replaced.

No library fitted: ``dicognito`` replaces identifiers with realistic fake values and shifts
dates (not the table's actions), ``deid`` needs hand-written recipes; the table is a direct
transcription of the standard's and the code applies it with pydicom.

A pseudonym, when configured, replaces the emptied Patient Name and Patient ID (allowed by
action Z, "or a dummy value"); :func:`pseudonym_for` derives it, and the service keeps the
mapping encrypted (:mod:`insightray.serving.storage.pseudonyms`).

:func:`restore_identity` is the way back, for a document made from a de-identified image
(an SR sent back to the PACS the image came from): given the original header, it puts the
patient and study identifiers back and maps the replacement UIDs to the originals.

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
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from importlib import resources
from io import BytesIO
from types import MappingProxyType

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence

from insightray.errors import CorruptFileError
from insightray.imaging.dicom import read_part10
from insightray.imaging.types import Source
from insightray.imaging.upload import ParsedUpload

__all__ = [
    "BASIC_PROFILE",
    "DEIDENTIFICATION_METHOD",
    "deidentify",
    "deidentify_bytes",
    "deidentify_upload",
    "encode_dataset",
    "pseudonym_for",
    "restore_identity",
    "upload_patient_id",
    "upload_study_date",
]


def _load_profile() -> Mapping[str, str]:
    """The ``actions`` of ``resources/deid_basic_profile.json``: keyword -> action code."""
    text = resources.files("insightray.imaging").joinpath("resources/deid_basic_profile.json")
    actions: dict[str, str] = json.loads(text.read_text(encoding="utf-8"))["actions"]
    return MappingProxyType(actions)


#: DICOM PS3.15 Table E.1-1: attribute keyword -> Basic Profile action code (``D``, ``Z``,
#: ``X``, ``U`` or a composite such as ``X/Z/D``), read-only.
BASIC_PROFILE: Mapping[str, str] = _load_profile()
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


def deidentify_bytes(data: Source, *, salt: bytes, pseudonym: str | None = None) -> bytes:
    """De-identify an encoded DICOM file (Part 10) and encode it again.

    pydicom stops quietly at a cut inside the data set, so a truncated file comes back
    without its pixels; decoding the image afterwards reports that as a typed error.

    Raises:
        UnsupportedFormatError: The bytes are not DICOM.
        CorruptFileError: The DICOM file is damaged beyond reading.
    """
    dataset = read_part10(data, name="upload")
    return encode_dataset(deidentify(dataset, salt=salt, pseudonym=pseudonym))


def deidentify_upload(upload: ParsedUpload, *, salt: bytes, pseudonym: str | None = None) -> bytes:
    """The de-identified Part 10 bytes of a DICOM upload, from the data set parsed once
    by :func:`~insightray.imaging.upload.read_upload` (read with ``strict=True``).

    Raises:
        ValueError: The upload is not DICOM (a programming error).
        CorruptFileError: The data set cannot be encoded again.
    """
    if upload.dataset is None:
        raise ValueError("only a DICOM upload can be de-identified")
    return encode_dataset(deidentify(upload.dataset, salt=salt, pseudonym=pseudonym))


def upload_patient_id(upload: ParsedUpload) -> str:
    """The Patient ID of a DICOM upload (``""`` when absent), to derive its pseudonym.

    Patient data: never log it or put it in an error.
    """
    if upload.dataset is None:
        return ""
    return str(upload.dataset.get("PatientID") or "")


def upload_study_date(upload: ParsedUpload) -> date | None:
    """The study's date of a DICOM upload (StudyDate, else the series, acquisition or
    content date), ``None`` when absent or unreadable; to order a patient's studies.

    Patient data: keep it sealed, never log it or put it in an error.
    """
    if upload.dataset is None:
        return None
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        text = str(upload.dataset.get(keyword) or "").strip()
        try:
            return datetime.strptime(text[:8], "%Y%m%d").date()
        except ValueError:
            continue
    return None


def encode_dataset(dataset: Dataset, name: str = "upload") -> bytes:
    """A data set as DICOM Part 10 bytes.

    Raises:
        CorruptFileError: It cannot be encoded (values the sender's export got wrong).
    """
    buffer = BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=True)
    except Exception as error:
        raise CorruptFileError(
            name, "the DICOM data set cannot be encoded", "check the sender's export"
        ) from error
    return buffer.getvalue()


def pseudonym_for(patient_id: str, salt: bytes) -> str:
    """A stable pseudonym (``IR-`` + 20 hex digits of an HMAC) for a patient ID."""
    digest = hmac.new(salt, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"IR-{digest[:20]}"


#: Patient and study attributes :func:`restore_identity` puts back (those a derived document,
#: such as an SR, copies from its source image).
RESTORED_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)

_DEIDENTIFICATION_MARKS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def _uids(dataset: Dataset) -> set[str]:
    """Every UID value in ``dataset``, at every nesting level."""
    found: set[str] = set()
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                found |= _uids(item)
        elif element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            found.update(str(uid) for uid in values)
    return found


def _map_uids(dataset: Dataset, originals: Mapping[str, str]) -> None:
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _map_uids(item, originals)
        elif element.VR == "UI" and element.value:
            if element.VM > 1:
                element.value = [originals.get(str(uid), str(uid)) for uid in element.value]
            else:
                element.value = originals.get(str(element.value), str(element.value))


def restore_identity(document: Dataset, original: Dataset, *, salt: bytes) -> Dataset:
    """A copy of ``document`` (made from the de-identified form of ``original``) carrying the
    original identifiers again: :data:`RESTORED_KEYWORDS` from ``original``, and every UID
    that :func:`deidentify` replaced (study, series, referenced SOP instances) mapped back.

    The document's own UIDs (an SR's SOP Instance UID) are not replacements and stay.
    Patient data: call it only on the way out to the system the image came from.

    Args:
        document: Derived from ``deidentify(original, salt=salt)``.
        original: The source's original header (pixels not needed).
        salt: The salt the source was de-identified with.

    Example:
        >>> from pydicom import examples
        >>> clean = deidentify(examples.ct, salt=b"s")
        >>> back = restore_identity(clean, examples.ct, salt=b"s")
        >>> original = examples.ct
        >>> back.PatientID == original.PatientID, back.SOPInstanceUID == original.SOPInstanceUID
        (True, True)
    """
    restored = copy.deepcopy(document)
    originals = {_new_uid(uid, salt): uid for uid in _uids(original)}
    _map_uids(restored, originals)
    for keyword in RESTORED_KEYWORDS:
        if keyword in restored:
            if keyword in original:
                restored[keyword].value = original[keyword].value
            else:
                del restored[keyword]
    for keyword in _DEIDENTIFICATION_MARKS:
        if keyword in restored:
            del restored[keyword]
    meta = getattr(restored, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in restored:
        meta.MediaStorageSOPInstanceUID = restored.SOPInstanceUID
    return restored

"""Studies: ingest (sniff, de-identify, validate, encrypt, record), look up, list, delete.

An upload is read ONCE by :func:`insightray.imaging.upload.read_upload` (pixels, windows,
metadata and, for DICOM, the parsed data set that :mod:`insightray.imaging.deid`
de-identifies and encodes again).

Blocking functions, called from request threads. The stored bytes are the de-identified
DICOM (or the PNG/JPEG as sent), encrypted in the content-addressed store; the ``studies``
row keeps only technical metadata. A study is visible to its owner, and to every user whose
role may read all studies (admins).

Example:
    >>> study = ingest(services, principal, data)  # doctest: +SKIP
    >>> study_json(study, [])["status"]  # doctest: +SKIP
    'stored'
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select

from insightray.errors import ImageSizeError, InputError, NotFoundError
from insightray.imaging import LoadedImage, read_image
from insightray.imaging.deid import (
    deidentify_upload,
    pseudonym_for,
    upload_patient_id,
    upload_study_date,
)
from insightray.imaging.types import Output
from insightray.imaging.upload import ParsedUpload, read_upload, reading_attributes
from insightray.serving import images
from insightray.serving.deps import Principal, Services
from insightray.serving.security.roles import Role
from insightray.serving.storage.blobstore import sha256_hex
from insightray.serving.storage.db.models import Result, Study, utc_now
from insightray.serving.storage.pseudonyms import remember_pseudonym
from insightray.serving.storage.study_reports import delete_reports

__all__ = [
    "decode_study",
    "delete_study",
    "get_study",
    "ingest",
    "list_studies",
    "prior_studies",
    "study_bytes",
    "study_frames",
    "study_json",
    "study_results",
]

#: Roles that see every study, not only their own.
SEE_ALL = frozenset({Role.ADMIN})


def ingest(
    services: Services, who: Principal, data: bytes, started: float | None = None
) -> tuple[Study, bool]:
    """Store an upload as a new study, audited (``study.upload``, latency from ``started``)
    in the transaction that adds its row; return it and ``False``.

    The same image sent again (the same de-identified bytes, so the same content hash) makes
    no second study: the caller's live study with that hash comes back with ``True``.

    Raises:
        EmptyFileError: No bytes (422).
        UnsupportedFormatError: Not DICOM, PNG, JPEG or TIFF (415).
        ImageSizeError: More pixels than ``settings.max_image_pixels`` (413), refused
            from the header, before decoding.
        InputError: A damaged file, no pixel data... (422).
    """
    deidentify = services.settings.deidentify
    limit = services.settings.max_image_pixels
    try:
        upload = read_upload(data, strict=deidentify, max_pixels=limit)  # the one parse
    except ImageSizeError as error:  # the imaging layer's hint names the CLI's --max-pixels
        raise ImageSizeError(
            "upload",
            error.problem,
            "downsample or crop the image, or ask an administrator to raise "
            "INSIGHTRAY_MAX_IMAGE_PIXELS",
        ) from None
    source_format = upload.source_format
    stored = data
    if source_format == "dicom" and deidentify:
        stored = _deidentify(services, upload)
    existing = _live_copy(services, who, sha256_hex(stored))
    if existing is not None:
        services.record(
            who, "study.upload", "duplicate", started, study_id=existing.id,
            input_sha256=existing.sha256,
        )  # fmt: skip
        return existing, True
    low, high = upload.value_range
    windows = upload.windows
    meta = upload.meta
    sha256 = services.store.put(stored)
    study = Study(
        owner_id=who.user_id,
        content_type=images.CONTENT_TYPES[source_format],
        modality=meta.modality,
        sha256=sha256,
        size_bytes=len(stored),
        width=meta.original_size[1],
        height=meta.original_size[0],
        pixel_spacing=list(meta.pixel_spacing) if meta.pixel_spacing else None,
        status="stored",
        meta={
            "source_format": source_format,
            "photometric": meta.photometric,
            "bits_stored": meta.bits_stored,
            "body_part": meta.body_part,
            "view": meta.view,
            "spacing_source": meta.spacing_source,
            **reading_attributes(upload, deidentified=source_format == "dicom" and deidentify),
            "transfer_syntax": meta.transfer_syntax,
            "frames": meta.frames,
            "value_range": [low, high],
            "windows": windows,
            "window_units": "modality",
            "deidentified": source_format == "dicom" and deidentify,
            **_patient_link(services, upload),
        },
    )
    with services.db.session() as session:
        session.add(study)
        session.flush()
        services.record(
            who, "study.upload", "ok", started, session, study_id=study.id, input_sha256=sha256
        )
        session.expunge(study)
    return study, False


def _live_copy(services: Services, who: Principal, sha256: str) -> Study | None:
    """The caller's own live study stored under ``sha256``, if any."""
    query = select(Study).where(
        Study.sha256 == sha256, Study.status != "deleted", Study.owner_id == who.user_id
    )
    with services.db.session(read_only=True) as session:
        study = session.scalars(query.order_by(Study.created_at)).first()
        if study is not None:
            session.expunge(study)
        return study


def _deidentify(services: Services, upload: ParsedUpload) -> bytes:
    """PS3.15 Basic Profile; with the pseudonym map on, a stable pseudonym is kept too."""
    pseudonym = None
    if services.settings.pseudonym_map:
        patient_id = upload_patient_id(upload)
        if patient_id:
            with services.db.session() as session:
                pseudonym = remember_pseudonym(
                    session, services.store.keyring, patient_id, services.deid_salt
                )
    return deidentify_upload(upload, salt=services.deid_salt, pseudonym=pseudonym)


def _patient_link(services: Services, upload: ParsedUpload) -> dict[str, str]:
    """What links a patient's studies without identifying them: the patient pseudonym
    (keyed by the site's salt, as de-identification derives it) and the study date sealed
    with the key ring (bound to the pseudonym); ``{}`` without a Patient ID."""
    patient_id = upload_patient_id(upload)
    if not patient_id:
        return {}
    pseudonym = pseudonym_for(patient_id, services.deid_salt)
    link = {"patient_pseudonym": pseudonym}
    day = upload_study_date(upload)
    if day is not None:
        sealed = services.store.keyring.encrypt(day.isoformat().encode(), aad=_date_aad(pseudonym))
        link["study_date_sealed"] = base64.b64encode(sealed).decode("ascii")
    return link


def _date_aad(pseudonym: str) -> bytes:
    return f"study-date:{pseudonym}".encode("ascii")


def _study_date(services: Services, study: Study) -> date | None:
    sealed = study.meta.get("study_date_sealed")
    pseudonym = study.meta.get("patient_pseudonym")
    if not sealed or not pseudonym:
        return None
    plain = services.store.keyring.decrypt(base64.b64decode(sealed), aad=_date_aad(pseudonym))
    return date.fromisoformat(plain.decode("ascii"))


def prior_studies(
    services: Services, who: Principal, study: Study
) -> list[tuple[Study, list[Result], int]]:
    """The earlier studies of the same patient the caller may see, newest first, each with
    its results and the days between its study date and ``study``'s.

    Same patient: the same pseudonym (derived from the Patient ID before de-identification);
    earlier: a study date before this study's. A study without a Patient ID or a date has
    no priors. The dates are read sealed and go nowhere but into the interval.
    """
    current = _study_date(services, study)
    pseudonym = study.meta.get("patient_pseudonym")
    if current is None or not pseudonym:
        return []
    priors = []
    for other, results in list_studies(services, who):
        if other.id == study.id or other.meta.get("patient_pseudonym") != pseudonym:
            continue
        day = _study_date(services, other)
        if day is not None and day < current:
            priors.append((other, results, (current - day).days))
    priors.sort(key=lambda item: item[2])
    return priors


def get_study(services: Services, who: Principal, study_id: str) -> Study:
    """A live study the caller may see.

    Raises:
        NotFoundError: No such study, deleted, or someone else's (404 either way).
    """
    with services.db.session(read_only=True) as session:
        study = session.get(Study, study_id)
        if study is None or study.status == "deleted" or not _visible(study, who):
            raise NotFoundError(f"study {study_id}", "no such study", "list /v1/studies")
        session.expunge(study)
        return study


def list_studies(services: Services, who: Principal) -> list[tuple[Study, list[Result]]]:
    """The caller's live studies (all for admins), newest first, with their results."""
    query = select(Study).where(Study.status != "deleted").order_by(Study.created_at.desc())
    if who.role not in SEE_ALL:
        query = query.where(Study.owner_id == who.user_id)
    with services.db.session(read_only=True) as session:
        studies = list(session.scalars(query))
        ids = [study.id for study in studies]
        results = list(session.scalars(select(Result).where(Result.study_id.in_(ids))))
        session.expunge_all()
    by_study: dict[str, list[Result]] = {}
    for result in results:
        by_study.setdefault(result.study_id, []).append(result)
    return [(study, by_study.get(study.id, [])) for study in studies]


def study_results(services: Services, study_id: str) -> list[Result]:
    """A study's results, oldest first."""
    query = select(Result).where(Result.study_id == study_id).order_by(Result.created_at)
    with services.db.session(read_only=True) as session:
        results = list(session.scalars(query))
        session.expunge_all()
    return results


def delete_study(
    services: Services, who: Principal, study_id: str, started: float | None = None
) -> Study:
    """Mark a study deleted, audited in the same transaction (``study.delete``), then erase
    its blobs (unless another live record uses them) and its saved reports."""
    study = get_study(services, who, study_id)
    with services.db.session() as session:
        row = session.get(Study, study_id)
        assert row is not None
        row.status, row.deleted_at = "deleted", utc_now()
        services.record(who, "study.delete", "ok", started, session, study_id=study_id)
        results = list(session.scalars(select(Result).where(Result.study_id == study_id)))
    for result in results:
        for key in (result.output_sha256, result.image_sha256):
            if key and not _blob_in_use(services, key, Result, study_id):
                services.store.delete(key)
    if not _blob_in_use(services, study.sha256, Study, study_id):
        services.store.delete(study.sha256)
    delete_reports(services, study_id)
    return study


def _blob_in_use(services: Services, key: str, table: type[Any], study_id: str) -> bool:
    live = Study.status != "deleted"
    with services.db.session(read_only=True) as session:
        if table is Study:
            query = select(func.count()).select_from(Study).where(Study.sha256 == key, live)
        else:
            query = (
                select(func.count())
                .select_from(Result)
                .join(Study, Study.id == Result.study_id)
                .where(
                    live,
                    Study.id != study_id,
                    (Result.output_sha256 == key) | (Result.image_sha256 == key),
                )
            )
        return bool(session.scalar(query))


def study_bytes(services: Services, study: Study) -> bytes:
    """The stored (de-identified) bytes, decrypted."""
    return services.store.get(study.sha256)


def decode_study(
    services: Services, study: Study, output: Output = "display", frame: int | None = None
) -> LoadedImage:
    """The study's image: by default with its default window applied, as the CLI reads it;
    ``output="modality"`` gives the values after the modality LUT. ``frame`` picks a frame
    of a multi-frame study (default: the first), read by :func:`insightray.imaging.read_image`.

    Raises:
        InputError: ``frame`` is not one of the study's frames (422).
    """
    frames = study_frames(study)
    if frame is not None and not 0 <= frame < frames:
        raise InputError(
            "frame", f"the study has {frames} frame(s), number {frame} was asked for",
            f"ask for a frame from 0 to {frames - 1}",
        )  # fmt: skip
    if frames > 1 and frame is None:
        frame = 0
    return read_image(study_bytes(services, study), frame=frame, output=output, name="upload")


def study_frames(study: Study) -> int:
    """How many frames the study's image has (1 for studies stored before frames were kept)."""
    return int(study.meta.get("frames") or 1)


def study_json(study: Study, results: Sequence[Any]) -> dict[str, Any]:
    """The API form of a study (no patient identifiers, no file name)."""
    return {
        "id": study.id,
        "modality": study.modality,
        "content_type": study.content_type,
        "size_bytes": study.size_bytes,
        "sha256": study.sha256,
        "width": study.width,
        "height": study.height,
        "pixel_spacing": study.pixel_spacing,
        "spacing_source": study.meta.get("spacing_source"),
        "windows": _windows(study),
        "photometric": study.meta.get("photometric"),
        "frames": study_frames(study),
        "body_part": study.meta.get("body_part"),
        "view": study.meta.get("view"),
        "laterality": study.meta.get("laterality"),
        "study_description": study.meta.get("study_description"),
        "series_description": study.meta.get("series_description"),
        "sr_findings": study.meta.get("sr_findings", []),
        "status": study.status,
        "created_at": study.created_at.isoformat(),
        "results": list(results),
    }


def _windows(study: Study) -> list[dict[str, Any]]:
    """The study's windows in modality units. Studies stored before ``window_units`` kept a
    MONOCHROME1 image's windows in inverted units (``min + max - center``): undone here."""
    windows: list[dict[str, Any]] = study.meta.get("windows", [])
    if study.meta.get("window_units") or study.meta.get("photometric") != "MONOCHROME1":
        return windows
    low, high = study.meta.get("value_range", [0.0, 0.0])
    return [{**w, "center": low + high - w["center"]} for w in windows]


def _visible(study: Study, who: Principal) -> bool:
    return who.role in SEE_ALL or study.owner_id == who.user_id

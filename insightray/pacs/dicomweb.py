"""DICOMweb against a PACS: query (QIDO-RS), retrieve (WADO-RS) and store (STOW-RS).

A thin, typed wrapper over ``dicomweb-client`` whose failures are Insight Ray errors with one
line saying what to do: a PACS that cannot be reached is a
:class:`~insightray.errors.ServiceUnavailableError`, a refused request an
:class:`~insightray.errors.UpstreamError` (the service answers them 503 and 502).
Messages name the server and the HTTP status, never identifiers from the data.

Example:
    >>> pacs = DicomWeb("http://127.0.0.1:8042/dicom-web")  # doctest: +SKIP
    >>> pacs.store([sr])  # doctest: +SKIP
    >>> [ref.sop_instance_uid for ref in pacs.find_instances(study_uid, modality="SR")]
    ... # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from insightray.errors import ServiceUnavailableError, UpstreamError

__all__ = ["STUDY_FILTERS", "DicomWeb", "InstanceRef", "StudyRef"]

T = TypeVar("T")

#: Loggers whose INFO and DEBUG lines carry study, series and instance UIDs (in messages and
#: URLs): UIDs identify a patient's study, so only their warnings and errors get through.
QUIETED_LOGGERS = ("dicomweb_client", "urllib3.connectionpool")
for _name in QUIETED_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)

#: DICOM JSON tags QIDO-RS answers carry.
_TAGS = {
    "study": "0020000D",
    "series": "0020000E",
    "sop": "00080018",
    "sop_class": "00080016",
    "modality": "00080060",
    "modalities": "00080061",
    "date": "00080020",
    "accession": "00080050",
    "description": "00081030",
    "patient_name": "00100010",
    "patient_id": "00100020",
    "instances": "00201208",
}
#: QIDO-RS study search keys :meth:`DicomWeb.find_studies` accepts -> DICOM keywords.
STUDY_FILTERS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "study_date": "StudyDate",
    "accession": "AccessionNumber",
    "modality": "ModalitiesInStudy",
    "study_uid": "StudyInstanceUID",
}


@dataclass(frozen=True)
class InstanceRef:
    """Where one instance lives in the PACS (from a QIDO-RS answer)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str


@dataclass(frozen=True)
class StudyRef:
    """One study found by QIDO-RS. Holds patient data: show it to authorised users only,
    never log it."""

    study_instance_uid: str
    study_date: str
    modalities: tuple[str, ...]
    description: str
    accession_number: str
    patient_name: str
    patient_id: str
    instances: int | None


def _value(record: dict[str, Any], key: str) -> str:
    values = record.get(_TAGS[key], {}).get("Value", [""])
    if not values:
        return ""
    value = values[0]
    if isinstance(value, dict):  # a person name in DICOM JSON: {"Alphabetic": "..."}
        return str(value.get("Alphabetic", ""))
    return str(value)


def _values(record: dict[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(value) for value in record.get(_TAGS[key], {}).get("Value", []))


class DicomWeb:
    """A DICOMweb endpoint (for Orthanc: ``http://HOST:8042/dicom-web``).

    Args:
        url: The DICOMweb root (QIDO, WADO and STOW share it).
        timeout_s: Seconds to wait for each request.
    """

    def __init__(self, url: str, *, timeout_s: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self._client = DICOMwebClient(self.url, timeout=timeout_s)
        # One attempt per call: retries and back-off are the caller's policy (routing rules).
        self._client.set_http_retry_params(retry=False)

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ServiceUnavailableError(
                f"PACS {self.url}",
                f"{what} failed: the server cannot be reached ({type(error).__name__})",
                "check the DICOMweb URL and that the PACS is running, then retry",
            ) from None
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            raise UpstreamError(
                f"PACS {self.url}",
                f"{what} was refused (HTTP {status})",
                "check the PACS's DICOMweb settings and its log",
            ) from None
        except requests.RequestException as error:  # a malformed URL, a redirect loop...
            raise UpstreamError(
                f"PACS {self.url}",
                f"{what} failed ({type(error).__name__})",
                "check the DICOMweb URL",
            ) from None

    def store(self, datasets: Sequence[Dataset]) -> list[str]:
        """STOW-RS the data sets; return the SOP Instance UIDs the PACS stored.

        Raises:
            UpstreamError: The PACS refused one or more instances.
        """
        answer = self._call("STOW-RS", lambda: self._client.store_instances(list(datasets)))
        failed = answer.get("FailedSOPSequence", [])
        if failed:
            raise UpstreamError(
                f"PACS {self.url}",
                f"STOW-RS refused {len(failed)} of {len(datasets)} instances",
                "check the PACS's log for the reason",
            )
        return [
            str(item.ReferencedSOPInstanceUID) for item in answer.get("ReferencedSOPSequence", [])
        ]

    def find_studies(self, filters: dict[str, str], *, limit: int = 50) -> list[StudyRef]:
        """QIDO-RS: studies matching ``filters`` (keys of :data:`STUDY_FILTERS`; DICOM
        matching: ``*`` wildcards, ``20240101-20240131`` date ranges), at most ``limit``."""
        search = {STUDY_FILTERS[key]: value for key, value in filters.items() if value}
        fields = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]
        records = self._call(
            "QIDO-RS",
            lambda: self._client.search_for_studies(
                search_filters=search, fields=fields, limit=limit
            ),
        )
        studies = []
        for record in records:
            count = _value(record, "instances")
            studies.append(
                StudyRef(
                    study_instance_uid=_value(record, "study"),
                    study_date=_value(record, "date"),
                    modalities=_values(record, "modalities"),
                    description=_value(record, "description"),
                    accession_number=_value(record, "accession"),
                    patient_name=_value(record, "patient_name"),
                    patient_id=_value(record, "patient_id"),
                    instances=int(count) if count.isdigit() else None,
                )
            )
        return studies

    def find_instances(self, study_uid: str, *, modality: str | None = None) -> list[InstanceRef]:
        """QIDO-RS: the instances of a study, optionally of one modality (``"SR"``)."""
        filters = {"Modality": modality} if modality else None
        records = self._call(
            "QIDO-RS",
            lambda: self._client.search_for_instances(
                study_instance_uid=study_uid,
                search_filters=filters,
                fields=["Modality", "SOPClassUID"],
            ),
        )
        return [
            InstanceRef(
                study_instance_uid=_value(record, "study") or study_uid,
                series_instance_uid=_value(record, "series"),
                sop_instance_uid=_value(record, "sop"),
                sop_class_uid=_value(record, "sop_class"),
                modality=_value(record, "modality"),
            )
            for record in records
        ]

    def retrieve(self, ref: InstanceRef) -> Dataset:
        """WADO-RS: one instance as a data set."""
        return self._call(
            "WADO-RS",
            lambda: self._client.retrieve_instance(
                ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid
            ),
        )

    def retrieve_study(self, study_uid: str) -> list[Dataset]:
        """WADO-RS: every instance of a study."""
        return self._call("WADO-RS", lambda: self._client.retrieve_study(study_uid))

"""DICOMweb against a PACS: query (QIDO-RS), retrieve (WADO-RS) and store (STOW-RS).

A thin, typed wrapper over ``dicomweb-client`` whose failures are Insight Ray errors with one
line saying what to do: a PACS that cannot be reached is a
:class:`~insightray.errors.ServiceUnavailableError`, a refused request a
:class:`~insightray.errors.ServiceError`. Messages name the server and the HTTP status, never
identifiers from the data.

Example:
    >>> pacs = DicomWeb("http://127.0.0.1:8042/dicom-web")  # doctest: +SKIP
    >>> pacs.store([sr])  # doctest: +SKIP
    >>> [ref.sop_instance_uid for ref in pacs.find_instances(study_uid, modality="SR")]
    ... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from insightray.errors import ServiceError, ServiceUnavailableError

__all__ = ["DicomWeb", "InstanceRef"]

T = TypeVar("T")

#: DICOM JSON tags QIDO-RS answers carry.
_TAGS = {
    "study": "0020000D",
    "series": "0020000E",
    "sop": "00080018",
    "sop_class": "00080016",
    "modality": "00080060",
}


@dataclass(frozen=True)
class InstanceRef:
    """Where one instance lives in the PACS (from a QIDO-RS answer)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str


def _value(record: dict[str, Any], key: str) -> str:
    values = record.get(_TAGS[key], {}).get("Value", [""])
    return str(values[0]) if values else ""


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
            raise ServiceError(
                f"PACS {self.url}",
                f"{what} was refused (HTTP {status})",
                "check the PACS's DICOMweb settings and its log",
            ) from None
        except requests.RequestException as error:  # a malformed URL, a redirect loop...
            raise ServiceError(
                f"PACS {self.url}",
                f"{what} failed ({type(error).__name__})",
                "check the DICOMweb URL",
            ) from None

    def store(self, datasets: Sequence[Dataset]) -> list[str]:
        """STOW-RS the data sets; return the SOP Instance UIDs the PACS stored.

        Raises:
            ServiceError: The PACS refused one or more instances.
        """
        answer = self._call("STOW-RS", lambda: self._client.store_instances(list(datasets)))
        failed = answer.get("FailedSOPSequence", [])
        if failed:
            raise ServiceError(
                f"PACS {self.url}",
                f"STOW-RS refused {len(failed)} of {len(datasets)} instances",
                "check the PACS's log for the reason",
            )
        return [
            str(item.ReferencedSOPInstanceUID) for item in answer.get("ReferencedSOPSequence", [])
        ]

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

"""A PACS study for the viewer: its images, and the boxes of the SRs filed beside them.

:func:`fetch_study` retrieves a study by WADO-RS and splits it: the images (with pixel data),
as Part 10 bytes for the service's ordinary upload path (which de-identifies and encrypts
them), and the TID 1500 SRs, read back (:func:`insightray.pacs.readback.read_sr`) into the
regions each places on an image. Per image, the regions of the newest SR that references it
are kept (a study analysed twice has two SRs). Other objects (presentation states, SRs that
are not TID 1500) are skipped.

Example:
    >>> [len(image.regions) for image in fetch_study(DicomWeb(url), "1.2.3")]  # doctest: +SKIP
    [2]
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset

from insightray.errors import InsightRayError
from insightray.pacs.dicomweb import DicomWeb
from insightray.pacs.readback import ReadBackRegion, read_sr

__all__ = ["FetchedImage", "fetch_study"]


@dataclass(frozen=True)
class FetchedImage:
    """One image of a PACS study.

    Attributes:
        data: The image as the PACS holds it (Part 10 bytes). Patient data: de-identify it
            before storing it anywhere.
        regions: The boxes the newest SR on this image places on it (empty: none).
    """

    data: bytes
    regions: tuple[ReadBackRegion, ...]


def _encode(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _written(dataset: Dataset) -> str:
    return f"{dataset.get('ContentDate', '')}{dataset.get('ContentTime', '')}"


def fetch_study(pacs: DicomWeb, study_uid: str) -> list[FetchedImage]:
    """The study's images with the boxes its SRs place on them.

    Raises:
        ServiceUnavailableError: The PACS cannot be reached.
        UpstreamError: The PACS refused the request.
    """
    images: list[Dataset] = []
    newest: dict[str, tuple[str, tuple[ReadBackRegion, ...]]] = {}
    for dataset in pacs.retrieve_study(study_uid):
        if "PixelData" in dataset:
            images.append(dataset)
            continue
        try:
            report = read_sr(dataset)
        except InsightRayError:  # not an SR, or not TID 1500: nothing to draw
            continue
        written = _written(dataset)
        for source in {region.source_sop_instance_uid for region in report.regions}:
            regions = tuple(r for r in report.regions if r.source_sop_instance_uid == source)
            if source not in newest or newest[source][0] < written:
                newest[source] = (written, regions)
    return [
        FetchedImage(_encode(image), newest.get(str(image.SOPInstanceUID), ("", ()))[1])
        for image in images
    ]

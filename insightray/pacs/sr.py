"""Results as DICOM Structured Reports: TID 1500 Measurement Reports written with highdicom.

Each detector box becomes one planar ROI group (TID 1410): a closed 2-D polyline
(``SCOORD`` ``POLYLINE`` in the source image's pixel coordinates, ``(column, row)`` with the
top-left corner of the top-left pixel at ``(0, 0)``, so the box needs no frame of reference),
the finding coded in SNOMED CT where a code exists (``resources/finding_codes.json``; the
local scheme ``99IRAY`` otherwise), the model's label as text in the tracking identifier,
the score as *Certainty of Finding* (no units, ``[0, 1]``) and the model's name, version and
weights sha256 as its algorithm identification. A fracture result becomes one image-level
group (TID 1501): *Fracture of bone*, its probability and *Present*/*Absent* at the card's
operating point. A detector that found nothing writes one image-level group, *no findings*
(the finding *Absent*), since a negative result is a result. The document is a
Comprehensive 3D SR (the SOP class highdicom writes for TID 1500) referencing the source SOP
instance; :func:`insightray.pacs.readback.read_sr` reads it back.

Example:
    >>> sr = build_sr(header, detection=(result, predictor.card))  # doctest: +SKIP
    >>> [region.box_px for region in read_sr(sr).regions]  # doctest: +SKIP
    [(1145.948, 550.173, 1502.853, 856.59)]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from insightray.errors import ConfigError, InputError, UnsupportedFormatError
from insightray.imaging import detect_format
from insightray.imaging.dicom import read_dataset

if TYPE_CHECKING:
    from insightray.engine import DetectionResult
    from insightray.engine.classification import FractureResult
    from insightray.models import ModelCard

__all__ = [
    "LOCAL_SCHEME",
    "NO_FINDINGS",
    "SR_SERIES_NUMBER",
    "build_sr",
    "check_source",
    "finding_code",
    "polyline",
    "sr_bytes",
    "write_sr",
]

#: Coding scheme of labels that have no SNOMED CT code here ("99" marks a private scheme).
LOCAL_SCHEME = "99IRAY"
#: The series number of the SR series Insight Ray writes into a study.
SR_SERIES_NUMBER = 9901
_MANUFACTURER = "Insight Ray"
#: How the weights' sha256 is written among the algorithm parameters.
SHA_PARAMETER = "weights_sha256="

Box = tuple[float, float, float, float]


@cache
def _finding_codes() -> dict[str, Any]:
    text = resources.files("insightray.pacs").joinpath("resources/finding_codes.json").read_text()
    table: dict[str, Any] = json.loads(text)
    return table


def _code(triple: list[str]) -> hd.sr.CodedConcept:
    scheme, value, meaning = triple
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def finding_code(label: str) -> tuple[hd.sr.CodedConcept, hd.sr.CodedConcept | None]:
    """The coded finding type and finding site of a model label (local code if unknown).

    Example:
        >>> finding_code("ActiveTuberculosis")[0].meaning
        'Tuberculosis'
        >>> finding_code("nodule")[0].scheme_designator
        '99IRAY'
    """
    entry = _finding_codes().get(label)
    if entry is None:
        local = hd.sr.CodedConcept(value=label[:16], scheme_designator=LOCAL_SCHEME, meaning=label)
        return local, None
    return _code(entry["finding"]), _code(entry["site"]) if entry.get("site") else None


def _algorithm(card: ModelCard) -> hd.sr.AlgorithmIdentification:
    sha = card.weights_sha256 or "unknown"
    return hd.sr.AlgorithmIdentification(
        name=card.name,
        version=card.version,
        parameters=[f"{SHA_PARAMETER}{sha}", f"task={card.task}"],
        manufacturer=_MANUFACTURER,
    )


def polyline(box: Box) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A box as a closed polyline: ``(x1, y1) (x2, y1) (x2, y2) (x1, y2) (x1, y1)``."""
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float32)


def check_source(source: Dataset) -> None:
    """Raise :class:`InputError` when the header lacks a UID a derived object must reference."""
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not source.get(keyword):
            raise InputError(
                "source image",
                f"the DICOM header has no {keyword}",
                "an SR can only reference a DICOM image from a PACS or modality",
            )


def _roi_groups(
    source: Dataset, result: DetectionResult, card: ModelCard
) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    groups = []
    algorithm = _algorithm(card)
    for index, found in enumerate(result.detections, start=1):
        finding, site = finding_code(found.class_name)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=polyline(found.box_px),
            source_image=hd.sr.SourceImageForRegion.from_source_image(source),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{found.class_name} {index}"
                ),
                referenced_region=region,
                finding_type=finding,
                finding_sites=[hd.sr.FindingSite(site)] if site is not None else None,
                algorithm_id=algorithm,
                measurements=[
                    hd.sr.Measurement(
                        name=codes.DCM.CertaintyOfFinding,
                        value=float(found.score),
                        unit=codes.UCUM.NoUnits,
                        algorithm_id=algorithm,
                    )
                ],
            )
        )
    return groups


#: The label of the image-level group a detector that found nothing writes.
NO_FINDINGS = "no findings"


def _image_group(
    source: Dataset, label: str, card: ModelCard, probability: float | None, present: bool
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One image-level group (TID 1501): a finding called present or absent by a model."""
    finding, site = finding_code(label)
    algorithm = _algorithm(card)
    measurements = (
        None
        if probability is None
        else [
            hd.sr.Measurement(
                name=codes.DCM.Probability,
                value=float(probability),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
            )
        ]
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
        finding_type=finding,
        finding_sites=[hd.sr.FindingSite(site)] if site is not None else None,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=codes.DCM.PresenceOfProperty,
                value=codes.SCT.Present if present else codes.SCT.Absent,
            )
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )


def build_sr(
    source: Dataset,
    *,
    detection: tuple[DetectionResult, ModelCard] | None = None,
    fracture: tuple[FractureResult, ModelCard] | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build a TID 1500 Measurement Report for one source image.

    Args:
        source: The source image's header (pixels not needed); its patient and study
            identifiers are copied into the SR so that the PACS files it beside the image.
        detection: A detector's result for this image and the detector's card.
        fracture: A fracture classifier's result for this image and its card.

    Raises:
        InputError: The header lacks the UIDs an SR must reference.
        ConfigError: Neither ``detection`` nor ``fracture`` was given.
    """
    check_source(source)
    if detection is None and fracture is None:
        raise ConfigError("SR", "there is no result to report", "pass a detection or fracture")
    groups: list[Any] = []
    cards: list[ModelCard] = []
    if detection is not None:
        result, card = detection
        groups.extend(_roi_groups(source, result, card))
        if not result.detections:  # a negative result is a result: say so in the report
            groups.append(_image_group(source, NO_FINDINGS, card, None, present=False))
        cards.append(card)
    if fracture is not None:
        answer, card = fracture
        present = answer.probability >= answer.threshold
        groups.append(_image_group(source, "fractured", card, answer.probability, present))
        cards.append(card)
    return measurement_report(
        source,
        groups,
        device_observer(
            [c.name + c.version for c in cards], " + ".join(card.name for card in cards)
        ),
        SR_SERIES_NUMBER,
        "Insight Ray AI results",
    )


def device_observer(identity: list[str], model_name: str) -> hd.sr.ObservationContext:
    """The observation context of an SR written by Insight Ray as a device, whose UID is
    derived from ``identity`` (the same models give the same device UID)."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=identity),
        name=_MANUFACTURER,
        manufacturer_name=_MANUFACTURER,
        model_name=model_name[:64],
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def measurement_report(
    source: Dataset,
    groups: list[Any],
    observation: hd.sr.ObservationContext,
    series_number: int,
    description: str,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of ``groups`` about ``source``, in a new SR series of
    the source's study (every SR Insight Ray writes is assembled here)."""
    report = hd.sr.MeasurementReport(
        observation_context=observation,
        procedure_reported=codes.LN.XRUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=_MANUFACTURER,
        series_description=description,
        is_complete=True,
    )


def dicom_sr_bytes(source: bytes, build: Callable[[Dataset], hd.sr.Comprehensive3DSR]) -> bytes:
    """``build(header)`` of a DICOM image's bytes, as DICOM Part 10 bytes.

    Raises:
        UnsupportedFormatError: The image is not DICOM.
    """
    if detect_format(source) != "dicom":
        raise UnsupportedFormatError(
            "study", "an SR can only reference a DICOM image", "use a DICOM study"
        )
    header = read_dataset(source, header_only=True, name="image")
    buffer = BytesIO()
    build(header).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sr_bytes(
    source: bytes,
    *,
    detection: tuple[DetectionResult, ModelCard] | None = None,
    fracture: tuple[FractureResult, ModelCard] | None = None,
) -> bytes | None:
    """The SR of an image's results as DICOM Part 10 bytes; ``None`` if the image is not DICOM.

    Raises:
        InputError: The image's header lacks the UIDs an SR must reference.
    """
    if detect_format(source) != "dicom":
        return None
    return dicom_sr_bytes(
        source, lambda header: build_sr(header, detection=detection, fracture=fracture)
    )


def write_sr(
    source_path: Path,
    out_dir: Path,
    *,
    detection: tuple[DetectionResult, ModelCard] | None = None,
    fracture: tuple[FractureResult, ModelCard] | None = None,
) -> Path:
    """Build the SR of a DICOM file's results and write it into ``out_dir``.

    Returns:
        The SR's path, ``out_dir / "<source SOP Instance UID>.sr.dcm"``.

    Raises:
        UnsupportedFormatError: The source is not a DICOM file.
    """
    return write_beside_source(
        source_path, out_dir, ".sr.dcm",
        lambda header: build_sr(header, detection=detection, fracture=fracture),
        refusal=("an SR can only be written for a DICOM image", "drop --sr for it"),
    )  # fmt: skip


def write_beside_source(
    source_path: Path,
    out_dir: Path,
    suffix: str,
    build: Callable[[Dataset], Dataset],
    *,
    refusal: tuple[str, str],
) -> Path:
    """Build a DICOM object from a DICOM file's header and write it into ``out_dir`` as
    ``<source SOP Instance UID><suffix>`` (the SRs and presentation states of the CLI).

    Raises:
        UnsupportedFormatError: The source is not a DICOM file (``refusal``: what is wrong,
            what to do).
    """
    if detect_format(source_path) != "dicom":
        raise UnsupportedFormatError(str(source_path), *refusal)
    header = read_dataset(source_path, header_only=True)
    document = build(header)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{header.SOPInstanceUID}{suffix}"
    document.save_as(target, enforce_file_format=True)
    return target

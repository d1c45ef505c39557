"""Reading TID 1500 Measurement Reports back: planar ROIs, image-level findings, algorithms.

:func:`read_sr` is the inverse of :func:`insightray.pacs.sr.build_sr`: each planar ROI comes
back as its label, coded finding, score and the bounding box of its polyline; each
image-level group as its label, probability and presence; each model as its name, version
and weights sha256.

Example:
    >>> report = read_sr("out/1.2.3.sr.dcm")  # doctest: +SKIP
    >>> report.regions[0].box_px  # doctest: +SKIP
    (1145.948, 550.173, 1502.853, 856.59)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from insightray.errors import InputError
from insightray.imaging.dicom import read_dataset
from insightray.pacs.sr import SHA_PARAMETER

__all__ = ["ReadBackFinding", "ReadBackRegion", "ReadBackReport", "read_sr"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ReadBackRegion:
    """One planar ROI read from an SR.

    Attributes:
        label: The model's label (from the tracking identifier).
        finding: The coded finding type, ``(scheme, value, meaning)``.
        score: The certainty of finding in ``[0, 1]``.
        box_px: ``(x1, y1, x2, y2)`` of the polyline's bounding box, image pixels.
        source_sop_instance_uid: The image the region lies on.
    """

    label: str
    finding: tuple[str, str, str]
    score: float
    box_px: Box
    source_sop_instance_uid: str


@dataclass(frozen=True)
class ReadBackFinding:
    """One image-level finding read from an SR (a classifier's answer).

    Attributes:
        label: The model's label (from the tracking identifier).
        probability: The probability measured.
        present: Whether the finding was called present at the model's operating point.
        evaluation: The evaluation's code meaning (``"Present"``, ``"Absent"``, a report's
            ``"Uncertain (qualifier value)"``; empty when there is none).
    """

    label: str
    probability: float
    present: bool
    evaluation: str = ""


@dataclass(frozen=True)
class ReadBackReport:
    """What :func:`read_sr` found in an SR.

    Attributes:
        sop_instance_uid: The SR's own SOP Instance UID.
        referenced_sop_instance_uids: Source images the SR references.
        algorithms: ``(name, version, weights sha256)`` of each model, in group order.
        regions: The planar ROIs, in document order.
        findings: The image-level findings, in document order.
    """

    sop_instance_uid: str
    referenced_sop_instance_uids: tuple[str, ...]
    algorithms: tuple[tuple[str, str, str], ...]
    regions: tuple[ReadBackRegion, ...]
    findings: tuple[ReadBackFinding, ...]


def _label(identifier: str) -> str:
    return identifier.rsplit(" ", 1)[0] if identifier.rsplit(" ", 1)[-1].isdigit() else identifier


def _algorithm_of(group: Any) -> tuple[str, str, str]:
    """``(name, version, weights sha256)`` from a group's algorithm identification items."""
    texts: dict[str, list[str]] = {}
    for item in _walk(group[0].ContentSequence):
        if item.ValueType == "TEXT":
            meaning = item.ConceptNameCodeSequence[0].CodeMeaning
            texts.setdefault(meaning, []).append(str(item.TextValue))
    sha = next(
        (
            p[len(SHA_PARAMETER) :]
            for p in texts.get("Algorithm Parameters", [])
            if p.startswith(SHA_PARAMETER)
        ),
        "",
    )
    return (texts.get("Algorithm Name", [""])[0], texts.get("Algorithm Version", [""])[0], sha)


def _region(group: hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations) -> ReadBackRegion:
    roi = group.roi
    assert roi is not None  # the caller keeps groups with a region only
    points = np.asarray(roi.value, dtype=np.float64)
    measurement = group.get_measurements(name=codes.DCM.CertaintyOfFinding)
    finding = group.finding_type
    return ReadBackRegion(
        label=_label(str(group.tracking_identifier)),
        finding=("", "", "")
        if finding is None
        else (finding.scheme_designator, finding.value, finding.meaning),
        score=float(measurement[0].value) if measurement else float("nan"),
        box_px=(
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        ),
        source_sop_instance_uid=_region_source(roi),
    )


def _finding(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> ReadBackFinding:
    probability = group.get_measurements(name=codes.DCM.Probability)
    evaluation = group.get_qualitative_evaluations(name=codes.DCM.PresenceOfProperty)
    value: Any = evaluation[0].value if evaluation else None  # a CodedConcept
    return ReadBackFinding(
        label=str(group.tracking_identifier),
        probability=float(probability[0].value) if probability else float("nan"),
        present=value == codes.SCT.Present,
        evaluation=str(value.meaning) if value is not None else "",
    )


def _region_source(region: Any) -> str:
    for item in region.get("ContentSequence", []):
        if item.ValueType == "IMAGE":
            return str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    return ""


def _walk(items: Any) -> Iterator[Any]:
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def read_sr(sr: Dataset | Path | str) -> ReadBackReport:
    """Read an SR written by :func:`build_sr` (or any TID 1500 report with 2-D regions).

    Raises:
        InputError: The data set is not a TID 1500 Measurement Report.
    """
    dataset = read_dataset(sr) if isinstance(sr, Path | str) else sr
    if dataset.get("Modality") != "SR":
        raise InputError("SR", "it is not a DICOM Structured Report", "pass an SR object")
    try:
        document = hd.sr.Comprehensive3DSR.from_dataset(dataset)
        report = hd.sr.MeasurementReport.from_sequence([document])
        planar = report.get_planar_roi_measurement_groups()
        image_level = report.get_image_measurement_groups()
    except (AttributeError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise InputError(
            "SR", f"it is not a TID 1500 Measurement Report ({type(error).__name__})", ""
        ) from None
    regions = [_region(group) for group in planar if group.roi is not None]
    findings = [_finding(group) for group in image_level]
    algorithms = [_algorithm_of(group) for group in [*planar, *image_level]]
    references = tuple(
        str(item.ReferencedSOPInstanceUID)
        for study in dataset.get("CurrentRequestedProcedureEvidenceSequence", [])
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    )
    return ReadBackReport(
        sop_instance_uid=str(dataset.SOPInstanceUID),
        referenced_sop_instance_uids=references,
        algorithms=tuple(dict.fromkeys(algorithms)),
        regions=tuple(regions),
        findings=tuple(findings),
    )

"""A reader's measurements as a DICOM SR: a TID 1500 Measurement Report of the lengths,
angles and regions saved with a study, written with highdicom like the AI results' SRs of
:mod:`insightray.pacs.sr` (and with its helpers).

Each measurement is one planar ROI group (TID 1410): its shape as a 2-D ``SCOORD`` in the
source image's pixel coordinates ``(column, row)`` (``POLYLINE`` for lines, angles and
rectangles, ``ELLIPSE`` for ellipses; no frame of reference needed), and its values: *Length*
in mm, *Angle* in degrees, a region's *Area* in mm² with its *Mean*, *Standard Deviation*,
*Minimum* and *Maximum* in the image's values (Hounsfield units for CT). Without a pixel
spacing, lengths and areas are in pixels (UCUM ``{pixels}``). The observer is a person (the
reader), not a device.

Example:
    >>> document = measurement_sr_bytes(study_dicom, [("length", [[0, 0], [10, 0]],
    ...     {"value": 1.68, "unit": "mm"})])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, NamedTuple

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from insightray.errors import ConfigError
from insightray.pacs.sr import (
    LOCAL_SCHEME,
    check_source,
    dicom_sr_bytes,
    measurement_report,
    polyline,
)

__all__ = [
    "MEASUREMENT_SR_SERIES_NUMBER",
    "ReaderMeasurement",
    "build_measurement_sr",
    "measurement_sr_bytes",
]


class ReaderMeasurement(NamedTuple):
    """One measurement of a reader.

    Attributes:
        kind: ``length``, ``angle``, ``rectangle`` or ``ellipse``.
        points: In the image's pixel coordinates ``(column, row)``.
        value: ``{"value", "unit"}`` of a length or angle; a region's ``{"area",
            "area_unit", "mean", "sd", "min", "max", "unit"}``.
        frame: The frame of a multi-frame image (0-based), ``None`` for a single frame.
    """

    kind: str
    points: list[list[float]]
    value: dict[str, Any]
    frame: int | None = None


#: The series number of the SR series of a reader's measurements.
MEASUREMENT_SR_SERIES_NUMBER = 9902
#: Lengths and areas without a pixel spacing are in pixels (UCUM annotation units).
_PIXELS = hd.sr.CodedConcept(value="{pixels}", scheme_designator="UCUM", meaning="pixels")
_SQUARE_PIXELS = hd.sr.CodedConcept(
    value="{pixels2}", scheme_designator="UCUM", meaning="square pixels"
)


def _unit(name: str) -> Code | hd.sr.CodedConcept:
    """The UCUM unit of a measurement's unit text (``mm``, ``mm²``, ``deg``, ``HU``...)."""
    units: dict[str, Code | hd.sr.CodedConcept] = {
        "mm": codes.UCUM.Millimeter,
        "mm²": codes.UCUM.SquareMillimeter,
        "mm2": codes.UCUM.SquareMillimeter,
        "deg": codes.UCUM.Degree,
        "HU": codes.UCUM.HounsfieldUnit,
        "px": _PIXELS,
        "px²": _SQUARE_PIXELS,
    }
    no_units: Code = codes.UCUM.NoUnits
    return units.get(name, no_units)


def _measurement_region(
    source: Dataset, kind: str, points: list[list[float]], frame: int | None
) -> hd.sr.ImageRegion:
    """The measured shape in the source image's pixel coordinates ``(column, row)``, on
    ``frame`` (0-based) of a multi-frame image (referenced as frame number ``frame + 1``)."""
    if kind in ("length", "angle"):
        graphic_type, data = hd.sr.GraphicTypeValues.POLYLINE, np.array(points, dtype=np.float32)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = points[:2]
        graphic_type, data = hd.sr.GraphicTypeValues.POLYLINE, polyline((x0, y0, x1, y1))
    else:  # an ellipse bounded by the two corners: its major axis ends, then its minor's
        (x0, y0), (x1, y1) = points[:2]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        across = [[cx - rx, cy], [cx + rx, cy]]
        down = [[cx, cy - ry], [cx, cy + ry]]
        axes = across + down if rx >= ry else down + across
        graphic_type, data = hd.sr.GraphicTypeValues.ELLIPSE, np.array(axes, dtype=np.float32)
    return hd.sr.ImageRegion(
        graphic_type=graphic_type,
        graphic_data=data,
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            source, referenced_frame_numbers=None if frame is None else [frame + 1]
        ),
    )


def _measurement_values(kind: str, value: dict[str, Any]) -> list[hd.sr.Measurement]:
    """Length or angle; a region's area, mean and SD (min and max too when known)."""
    if kind in ("length", "angle"):
        name = codes.SCT.Length if kind == "length" else codes.SCT.Angle
        return [
            hd.sr.Measurement(name=name, value=float(value["value"]), unit=_unit(value["unit"]))
        ]
    found = [
        hd.sr.Measurement(
            name=codes.SCT.Area, value=float(value["area"]), unit=_unit(value.get("area_unit", ""))
        )
    ]
    unit = _unit(str(value.get("unit", "")))
    for key, name in (
        ("mean", codes.SCT.Mean),
        ("sd", codes.SCT.StandardDeviation),
        ("min", codes.SCT.Minimum),
        ("max", codes.SCT.Maximum),
    ):
        if isinstance(value.get(key), int | float):
            found.append(hd.sr.Measurement(name=name, value=float(value[key]), unit=unit))
    return found


def build_measurement_sr(
    source: Dataset, measurements: list[ReaderMeasurement]
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of a reader's measurements on one source image.

    Args:
        source: The source image's header; the SR references it and copies its patient and
            study identifiers.
        measurements: The reader's measurements (:class:`ReaderMeasurement`).

    Raises:
        InputError: The header lacks the UIDs an SR must reference.
        ConfigError: There are no measurements.
    """
    check_source(source)
    if not measurements:
        raise ConfigError("SR", "the study has no measurements", "measure something first")
    groups = []
    for index, (kind, points, value, frame) in enumerate(measurements, start=1):
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{kind} {index}"
                ),
                referenced_region=_measurement_region(source, kind, points, frame),
                finding_type=hd.sr.CodedConcept(
                    value=kind[:16], scheme_designator=LOCAL_SCHEME, meaning=f"reader {kind}"
                ),
                measurements=_measurement_values(kind, value),
            )
        )
    observation = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name="Reader^Insight Ray"
            ),
        )
    )
    return measurement_report(
        source, groups, observation, MEASUREMENT_SR_SERIES_NUMBER, "Insight Ray reader measurements"
    )


def measurement_sr_bytes(source: bytes, measurements: list[ReaderMeasurement]) -> bytes:
    """:func:`build_measurement_sr` of a DICOM image's bytes, as DICOM Part 10 bytes.

    Raises:
        UnsupportedFormatError: The image is not DICOM.
        InputError: Its header lacks the UIDs an SR must reference.
        ConfigError: There are no measurements.
    """
    return dicom_sr_bytes(source, lambda header: build_measurement_sr(header, measurements))

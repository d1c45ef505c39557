"""Detector boxes as a Grayscale Softcopy Presentation State, so plain viewers draw them.

Many PACS viewers do not render TID 1500 planar ROIs but do apply a presentation state: a
GSPS (written with highdicom) references the source image and carries, on one graphic layer
``INSIGHTRAY_AI``, one closed ``POLYLINE`` per box in the image's pixel coordinates (the
same convention as the SR: ``(column, row)``, ``(0, 0)`` the top-left corner of the top-left
pixel) and a text label ``"<label> <score>"`` anchored at the box's top-left corner. A
detector that found nothing writes the text "no findings". It adds no window: the viewer's
own (or the image's) applies. The SR stays the measurable record; the GSPS is for display.

Example:
    >>> gsps = build_gsps(header, result, predictor.card)  # doctest: +SKIP
    >>> read_gsps_boxes(gsps)  # doctest: +SKIP
    [(1145.948, 550.173, 1502.853, 856.59)]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from insightray.pacs.sr import check_source, polyline, write_beside_source

if TYPE_CHECKING:
    from insightray.engine import DetectionResult
    from insightray.models import ModelCard

__all__ = ["GSPS_LAYER", "GSPS_SERIES_NUMBER", "build_gsps", "read_gsps_boxes", "write_gsps"]

#: The graphic layer the boxes are drawn on.
GSPS_LAYER = "INSIGHTRAY_AI"
#: The series number of the presentation states Insight Ray writes into a study.
GSPS_SERIES_NUMBER = 9902
_MANUFACTURER = "Insight Ray"


def build_gsps(
    source: Dataset, result: DetectionResult, card: ModelCard
) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """A presentation state drawing ``result``'s boxes on the ``source`` image.

    Args:
        source: The source image's data set (its header is enough).
        result: The detector's result for this image.
        card: The detector's card (name and version go into the object).

    Raises:
        InputError: The header lacks the UIDs a presentation state must reference.
    """
    check_source(source)
    layer = hd.pr.GraphicLayer(
        layer_name=GSPS_LAYER, order=1, description=f"{card.name} {card.version}"[:64]
    )
    objects = [
        hd.pr.GraphicObject(
            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
            graphic_data=polyline(found.box_px),
            units=hd.pr.AnnotationUnitsValues.PIXEL,
            tracking_id=f"{found.class_name} {index}"[:64],
            tracking_uid=generate_uid(),
        )
        for index, found in enumerate(result.detections, start=1)
    ]
    texts = [
        hd.pr.TextObject(
            text_value=f"{found.class_name} {found.score:.2f}"[:64],
            units=hd.pr.AnnotationUnitsValues.PIXEL,
            anchor_point=(float(found.box_px[0]), float(found.box_px[1])),
            anchor_point_visible=False,
        )
        for found in result.detections
    ]
    if not texts:  # a negative result is a result
        texts = [
            hd.pr.TextObject(
                text_value="no findings",
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(1.0, 1.0),
                anchor_point_visible=False,
            )
        ]
    annotation = hd.pr.GraphicAnnotation(
        referenced_images=[source],
        graphic_layer=layer,
        graphic_objects=objects or None,
        text_objects=texts,
    )
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        series_instance_uid=generate_uid(),
        series_number=GSPS_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=_MANUFACTURER,
        manufacturer_model_name=card.name[:64],
        software_versions=card.version[:64],
        device_serial_number="0",
        content_label="INSIGHTRAY_AI",
        content_description=f"AI findings of {card.name}"[:64],
        graphic_annotations=[annotation],
        graphic_layers=[layer],
    )
    # General Series: Laterality is 2C and dciodvfy asks for it; the source's, else empty.
    gsps.Laterality = source.get("Laterality", "")
    return gsps


def write_gsps(source_path: Path, out_dir: Path, result: DetectionResult, card: ModelCard) -> Path:
    """Build the presentation state of a DICOM file's boxes and write it into ``out_dir``.

    Returns:
        Its path, ``out_dir / "<source SOP Instance UID>.pr.dcm"``.

    Raises:
        UnsupportedFormatError: The source is not a DICOM file.
    """
    return write_beside_source(
        source_path, out_dir, ".pr.dcm", lambda header: build_gsps(header, result, card),
        refusal=("a presentation state needs a DICOM image", "drop --gsps for it"),
    )  # fmt: skip


def read_gsps_boxes(gsps: Dataset) -> list[tuple[float, float, float, float]]:
    """The ``(x1, y1, x2, y2)`` boxes of every polyline in a presentation state, in order."""
    boxes = []
    for annotation in gsps.get("GraphicAnnotationSequence", []):
        for item in annotation.get("GraphicObjectSequence", []):
            points = [float(value) for value in item.GraphicData]
            xs, ys = points[0::2], points[1::2]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    return boxes

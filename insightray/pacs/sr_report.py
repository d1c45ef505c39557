"""A radiology report's structured observations as a DICOM SR: a TID 1500 Measurement Report
with one image-level group (TID 1501) per CheXpert observation the report mentions, written
with highdicom beside the AI results' SRs of :mod:`insightray.pacs.sr`.

Each group codes the observation as a finding (SNOMED CT where a code exists, in
``resources/finding_codes.json``; else the local scheme with the observation's name) with a
qualitative evaluation: *Present* (the report affirms it), *Absent* (it negates it) or
*Uncertain*. The observations the report does not mention are left out (No Finding is
positive when nothing else is, so there is always at least one group). The algorithm
identification names the rules that labelled the report (name and version), so a PACS reader
can tell these statements came from the text of the report, not from an image model.

Example:
    >>> labels = ReportLabeller().label("Small left pleural effusion. No pneumothorax.")
    ...     # doctest: +SKIP
    >>> document = report_sr_bytes(study_dicom, labels)  # doctest: +SKIP
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from insightray.nlp.reports.labeller import ReportLabels
from insightray.pacs.sr import (
    check_source,
    device_observer,
    dicom_sr_bytes,
    finding_code,
    measurement_report,
)

__all__ = ["REPORT_SR_SERIES_NUMBER", "build_report_sr", "report_sr_bytes"]

#: The series number of report-observation SRs (the AI results' SRs are 9901).
REPORT_SR_SERIES_NUMBER = 9903

#: How each mentioned status is evaluated.
EVALUATIONS: dict[str, Code] = {
    "positive": codes.SCT.Present,
    "negative": codes.SCT.Absent,
    "uncertain": codes.SCT.Uncertain,
}


def build_report_sr(source: Dataset, labels: ReportLabels) -> hd.sr.Comprehensive3DSR:
    """Build the SR of a report's observations about one source image.

    Args:
        source: The image's header; its patient and study identifiers are copied.
        labels: The labelled report (:class:`~insightray.nlp.reports.labeller.ReportLabels`).

    Raises:
        InputError: The header lacks the UIDs an SR must reference.
    """
    check_source(source)
    name, _, version = labels.rules.partition("@")
    algorithm = hd.sr.AlgorithmIdentification(name=name, version=version or "unknown")
    groups = []
    for observation in labels.observations:
        if observation.status not in EVALUATIONS:
            continue  # absent: the report does not mention it
        finding, site = finding_code(observation.label)
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=observation.label
                ),
                finding_type=finding,
                finding_sites=[hd.sr.FindingSite(site)] if site is not None else None,
                algorithm_id=algorithm,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=codes.DCM.PresenceOfProperty, value=EVALUATIONS[observation.status]
                    )
                ],
                source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
            )
        )
    return measurement_report(
        source,
        groups,
        device_observer([labels.rules], name),
        REPORT_SR_SERIES_NUMBER,
        "Insight Ray report observations",
    )


def report_sr_bytes(source: bytes, labels: ReportLabels) -> bytes:
    """:func:`build_report_sr` of a DICOM image's bytes, as DICOM Part 10 bytes.

    Raises:
        UnsupportedFormatError: The image is not DICOM.
        InputError: Its header lacks the UIDs an SR must reference.
    """
    return dicom_sr_bytes(source, lambda header: build_report_sr(header, labels))

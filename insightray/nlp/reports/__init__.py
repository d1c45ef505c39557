"""Radiology reports: sections, and CheXpert's 14 observations with negation and uncertainty.

Example:
    >>> from insightray.nlp.reports import ReportLabeller
    >>> labels = ReportLabeller().label("FINDINGS: No pneumothorax.")  # doctest: +SKIP
    >>> labels.status("Pneumothorax")  # doctest: +SKIP
    'negative'
"""

from __future__ import annotations

from insightray.nlp.reports.labeller import (
    NO_FINDING,
    OBSERVATIONS,
    STATUSES,
    Evidence,
    Observation,
    ReportLabeller,
    ReportLabels,
)
from insightray.nlp.reports.sections import Section

__all__ = [
    "NO_FINDING",
    "OBSERVATIONS",
    "STATUSES",
    "Evidence",
    "Observation",
    "ReportLabeller",
    "ReportLabels",
    "Section",
]

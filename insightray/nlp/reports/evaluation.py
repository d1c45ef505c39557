"""Score a report labeller against reference labels: per-observation precision, recall and F1
with percentile-bootstrap 95 % intervals, and a reader for the Indiana University chest X-ray
reports (Open-i) with the MeSH-to-CheXpert mapping of the shared data's README.

The reference of a report is the set of observations its indexers' MeSH ``<major>`` terms map
to (the heading before the first ``/``); ``normal`` maps to ``No Finding``. Reports with no
FINDINGS and no IMPRESSION text, no ``<major>`` term, or ``No Indexing`` are left out.

Example:
    >>> scores = score([{"Edema"}, set()], [{"Edema"}, {"Edema"}], ["Edema"], rounds=0)
    >>> scores.per_label["Edema"].precision, scores.per_label["Edema"].recall
    (1.0, 0.5)
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import InputNotFoundError

__all__ = [
    "IU_LABELS",
    "MESH_TO_CHEXPERT",
    "IuReport",
    "LabelScore",
    "Scores",
    "iu_report_roots",
    "read_iu_reports",
    "score",
]

#: MeSH major headings per CheXpert observation (the data README's table).
MESH_TO_CHEXPERT: dict[str, tuple[str, ...]] = {
    "No Finding": ("normal",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Pleural Effusion": ("Pleural Effusion",),
    "Atelectasis": ("Pulmonary Atelectasis",),
    "Lung Opacity": ("Opacity", "Airspace Disease", "Lung Diseases, Interstitial"),
    "Lung Lesion": ("Nodule", "Mass", "Lung Neoplasms"),
    "Edema": ("Pulmonary Edema",),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Pneumothorax": ("Pneumothorax",),
    "Fracture": ("Fractures, Bone",),
    "Support Devices": (
        "Catheters, Indwelling",
        "Implanted Medical Device",
        "Medical Device",
        "Tube, Inserted",
        "Surgical Instruments",
    ),
}
#: The 12 observations scored on these reports.
IU_LABELS = tuple(MESH_TO_CHEXPERT)
_ORDER = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")


@dataclass(frozen=True)
class IuReport:
    """One Indiana report: its id, its text with section headers, and its reference labels."""

    id: str
    text: str
    reference: frozenset[str]


def iu_report_roots(archive: Path) -> Iterator[tuple[str, ET.Element]]:
    """``(file name, parsed XML root)`` of each report in an Open-i ``NLMCXR_reports*.tgz``,
    in archive order, read in place.

    Raises:
        InputNotFoundError: The archive does not exist.
    """
    if not archive.is_file():
        raise InputNotFoundError(str(archive), "no such archive", "set INSIGHTRAY_DATA")
    with tarfile.open(archive) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.name.endswith(".xml") else None
            if handle is not None:
                yield member.name, ET.parse(handle).getroot()


def read_iu_reports(archive: Path) -> Iterator[IuReport]:
    """The scorable reports of an Open-i ``NLMCXR_reports*.tgz``, read in place, by id.

    The text is rebuilt as ``COMPARISON: ...`` / ``INDICATION: ...`` / ``FINDINGS: ...`` /
    ``IMPRESSION: ...`` lines, as the report was written.

    Raises:
        InputNotFoundError: The archive does not exist.
    """
    heading_to_label = {h: label for label, hs in MESH_TO_CHEXPERT.items() for h in hs}
    reports = []
    for name, root in iu_report_roots(archive):
        parts = {a.get("Label"): (a.text or "").strip() for a in root.iter("AbstractText")}
        majors = [(m.text or "").strip() for m in root.iter("major")]
        if not (parts.get("FINDINGS") or parts.get("IMPRESSION")) or not majors:
            continue
        if any(m.lower().startswith("no indexing") for m in majors):
            continue
        reference = {heading_to_label.get(m.split("/")[0].strip(), "") for m in majors}
        text = "\n".join(f"{label}: {parts[label]}" for label in _ORDER if parts.get(label))
        node = root.find("uId")
        report_id = node.get("id", name) if node is not None else name
        reports.append(IuReport(str(report_id), text, frozenset(reference - {""})))
    yield from sorted(reports, key=lambda r: (len(r.id), r.id))


@dataclass(frozen=True)
class LabelScore:
    """Precision, recall and F1 of one observation, with 95 % bootstrap intervals of F1."""

    label: str
    support: int
    predicted: int
    precision: float
    recall: float
    f1: float
    f1_low: float
    f1_high: float


@dataclass(frozen=True)
class Scores:
    """Per-observation scores and the macro-F1 (mean over observations) with its interval."""

    reports: int
    per_label: dict[str, LabelScore]
    macro_f1: float
    macro_low: float
    macro_high: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


def _f1(tp: NDArray[Any], fp: NDArray[Any], fn: NDArray[Any]) -> NDArray[Any]:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def score(
    predicted: Sequence[set[str] | frozenset[str]],
    reference: Sequence[set[str] | frozenset[str]],
    labels: Sequence[str] = IU_LABELS,
    rounds: int = 1000,
    seed: int = 13,
) -> Scores:
    """Scores of ``predicted`` label sets against ``reference`` sets, report by report.

    Args:
        predicted: The observations predicted positive for each report.
        reference: The reference observations of each report.
        labels: The observations to score.
        rounds: Bootstrap resamples of the reports (0: no interval, bounds equal the figure).
        seed: Random seed of the resampling.
    """
    pred = np.array([[label in p for label in labels] for p in predicted], dtype=bool)
    true = np.array([[label in r for label in labels] for r in reference], dtype=bool)
    pred, true = (
        pred.reshape(len(predicted), len(labels)),
        true.reshape(len(reference), len(labels)),
    )
    tp, fp, fn = (
        (pred & true).astype(float),
        (pred & ~true).astype(float),
        (~pred & true).astype(float),
    )
    f1 = _f1(tp.sum(0), fp.sum(0), fn.sum(0))
    boot = np.repeat(f1[None, :], 1, axis=0)
    if rounds > 0 and len(pred):
        rng = np.random.default_rng(seed)
        index = rng.integers(0, len(pred), size=(rounds, len(pred)))
        boot = _f1(tp[index].sum(1), fp[index].sum(1), fn[index].sum(1))
    low, high = np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)
    macro = boot.mean(1)
    per_label = {}
    for i, label in enumerate(labels):
        n_pred, n_true = int(pred[:, i].sum()), int(true[:, i].sum())
        per_label[label] = LabelScore(
            label=label,
            support=n_true,
            predicted=n_pred,
            precision=float(tp[:, i].sum() / n_pred) if n_pred else 0.0,
            recall=float(tp[:, i].sum() / n_true) if n_true else 0.0,
            f1=float(f1[i]),
            f1_low=float(low[i]),
            f1_high=float(high[i]),
        )
    return Scores(
        reports=len(pred),
        per_label=per_label,
        macro_f1=float(f1.mean()),
        macro_low=float(np.percentile(macro, 2.5)),
        macro_high=float(np.percentile(macro, 97.5)),
    )

"""A DICOM file's header as rows for a tag browser, each marked when it can identify a patient.

Which elements are identifying follows :data:`~insightray.imaging.dicom.PHI_ATTRIBUTES` plus
every person name (VR ``PN``), date, time and date-time (``DA``, ``TM``, ``DT``), every
attribute whose keyword names an ID, and private elements (their content is unknown). The
caller decides who sees those values; this module only reads and marks them.

Example:
    >>> rows = header_rows(open("chest.dcm", "rb").read())  # doctest: +SKIP
    >>> next(r for r in rows if r.keyword == "PatientName").phi  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from insightray.imaging.dicom import PHI_ATTRIBUTES, PIXEL_DATA_TAGS, read_dataset

__all__ = ["TagRow", "header_rows"]

#: Longest value text kept per element.
MAX_VALUE_CHARS = 160
#: Value representations that name people or dates.
PHI_VRS = frozenset({"PN", "DA", "TM", "DT"})
#: Binary value representations: shown as their length only.
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


@dataclass(frozen=True)
class TagRow:
    """One header element: ``(gggg,eeee)``, keyword, VR, value text, nesting depth, PHI mark."""

    tag: str
    keyword: str
    vr: str
    value: str
    depth: int
    phi: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


def header_rows(data: bytes, *, name: str = "study") -> list[TagRow]:
    """Every element of the file's header (pixel data left out), sequences one level deep.

    Raises:
        CorruptFileError: The header cannot be parsed.
    """
    dataset = read_dataset(data, force=True, header_only=True, name=name)
    rows: list[TagRow] = []
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        rows.extend(_rows(meta, 0))
    rows.extend(_rows(dataset, 0))
    return rows


def _rows(dataset: Dataset, depth: int) -> list[TagRow]:
    rows = []
    for element in dataset:
        if element.keyword in PIXEL_DATA_TAGS:
            continue
        rows.append(_row(element, depth))
        if element.VR == "SQ" and depth < 1:
            for item in element.value:
                rows.extend(_rows(item, depth + 1))
    return rows


def _row(element: DataElement, depth: int) -> TagRow:
    keyword = element.keyword or ("(private)" if element.tag.is_private else "")
    phi = (
        element.keyword in PHI_ATTRIBUTES
        or element.VR in PHI_VRS
        or element.tag.is_private
        or (keyword.endswith(("ID", "IDs")) and not keyword.endswith("UID"))
        or keyword.endswith("InstanceUID")
    )
    tag = f"({element.tag.group:04X},{element.tag.element:04X})"
    return TagRow(tag, keyword, str(element.VR), _text(element), depth, bool(phi))


def _text(element: DataElement) -> str:
    if element.VR == "SQ":
        return f"sequence of {len(element.value)} item(s)"
    if element.VR in BINARY_VRS:
        return f"{len(element.value or b'')} bytes"
    value = element.value
    many = isinstance(value, Sequence) and not isinstance(value, str | bytes)
    text = "\\".join(str(v) for v in value) if many else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"

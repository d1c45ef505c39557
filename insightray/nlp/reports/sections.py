"""Sections of a radiology report (FINDINGS, IMPRESSION, INDICATION, ...), found from headers.

A header is a section name followed by ``:`` at the start of a line, or anywhere when written
in capitals (``... normal. IMPRESSION: no acute disease``). The names and their synonyms are
data (``sections.names`` in ``resources/chexpert_observations.json``). Text before the first
header is the ``BODY`` section, so a report pasted without headers is one ``BODY`` section.

Example:
    >>> rules = SectionRules({"FINDINGS": ["findings?"], "INDICATION": ["indications?"]})
    >>> [(s.name, s.text) for s in rules.split("INDICATION: cough\\nFINDINGS: No effusion.")]
    [('INDICATION', 'cough'), ('FINDINGS', 'No effusion.')]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from insightray.errors import ConfigError

__all__ = ["BODY", "Section", "SectionRules"]

#: The name of text that comes before any header (or of a report without headers).
BODY = "BODY"


@dataclass(frozen=True)
class Section:
    """One section: its name, the header as written, and the body's offsets ``[start, end)``.

    Attributes:
        name: Canonical name (``FINDINGS``, ``IMPRESSION``, ``INDICATION``, ``HISTORY``,
            ``COMPARISON``, ``TECHNIQUE`` or ``BODY``).
        header: The header as written (empty for ``BODY``).
        header_start: Offset of the header (equal to ``start`` for ``BODY``).
        start: Offset of the body's first character (after the header and spaces).
        end: Offset just past the body's last non-space character.
        text: The body.
    """

    name: str
    header: str
    header_start: int
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for JSON."""
        return asdict(self)


class SectionRules:
    """Header patterns per section name.

    Args:
        names: Section name to regular expressions of its header words (case-insensitive).

    Raises:
        ConfigError: A pattern is not a valid regular expression.
    """

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        self._canonical: list[tuple[re.Pattern[str], str]] = []
        alternatives = []
        try:
            for name, patterns in names.items():
                if name == "about":
                    continue
                for pattern in patterns:
                    self._canonical.append((re.compile(rf"(?:{pattern})\Z", re.I), name))
                    alternatives.append(pattern)
            self._header = re.compile(rf"(?<![\w/])(?P<name>{'|'.join(alternatives)})[ \t]*:", re.I)
        except re.error as error:
            raise ConfigError(
                "section names", f"bad pattern ({error})", "fix the rules file"
            ) from error

    def _name(self, header: str) -> str:
        words = " ".join(header.split())
        return next(name for pattern, name in self._canonical if pattern.match(words))

    def split(self, text: str) -> list[Section]:
        """The sections of ``text`` in order, headers left out, blank sections dropped."""
        headers = []
        for found in self._header.finditer(text):
            line_start = text.rfind("\n", 0, found.start()) + 1
            at_line_start = not text[line_start : found.start()].strip()
            if at_line_start or found.group("name").isupper():
                headers.append(found)
        pieces: list[tuple[str, str, int, int, int]] = []
        name, header, header_start, start = BODY, "", 0, 0
        for found in headers:
            pieces.append((name, header, header_start, start, found.start()))
            name, header = self._name(found.group("name")), found.group(0)
            header_start, start = found.start(), found.end()
        pieces.append((name, header, header_start, start, len(text)))
        sections = []
        for name, header, header_start, start, end in pieces:
            body = text[start:end]
            if not body.strip():
                continue
            first = start + len(body) - len(body.lstrip())
            last = start + len(body.rstrip())
            where = header_start if header else first
            sections.append(
                Section(name, header.rstrip(": \t"), where, first, last, text[first:last])
            )
        return sections

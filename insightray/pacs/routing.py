"""Routing rules as data: which arriving images go to which model, and where results go.

A YAML (or JSON) file holds the rules, the retry policy and the dead-letter folder::

    rules:
      - name: chest
        match: {modality: [CR, DX], body_part: [CHEST]}   # every listed key must match
        task: detection                                   # or classification
        model: null                                       # card/bundled name; null: default
        destination: {dicomweb: "http://127.0.0.1:8042/dicom-web"}
      - name: bones
        match: {modality: [CR, DX], series_description: "(?i)tibia|wrist"}
        task: classification
        destination: {cstore: {host: pacs.local, port: 2762, aet: PACS, tls: true}}
        # presentation_state: true   # detection only: also send the boxes as a GSPS
    retry: {attempts: 3, backoff_s: 2.0}
    dead_letter: /var/lib/insightray/dead-letter

The first rule whose ``match`` fits an image's header wins; an image that no rule fits is
left alone (an SR or a presentation state arriving, say). Match keys: ``modality``,
``body_part``, ``view_position`` (lists of values, case-insensitive) and
``series_description`` (a regular expression). Unknown keys are errors.

Example:
    >>> config = routing_from_dict({"rules": [{"name": "all", "task": "detection",
    ...     "destination": {"dicomweb": "http://127.0.0.1:8042/dicom-web"}}]})
    >>> config.rules[0].task, config.retry.attempts
    ('detection', 3)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from insightray.errors import ConfigError, InputNotFoundError

__all__ = [
    "CStoreDestination",
    "Match",
    "RetryPolicy",
    "Route",
    "RoutingConfig",
    "load_routing",
    "routing_from_dict",
]

TASKS = ("detection", "classification")
_HEADER_KEYS = {
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "view_position": "ViewPosition",
}


class Header(Protocol):
    """Anything with ``get(keyword, default)``: a pydicom Dataset, a dict of keywords."""

    def get(self, key: str, default: Any = None, /) -> Any:
        """The value of a keyword, or ``default``."""


def _fail(subject: str, problem: str) -> ConfigError:
    return ConfigError(f"routing {subject}", problem, "fix the routing file")


def _only(section: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise _fail(section, f"unknown keys {unknown}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class Match:
    """What an image's header must show; an empty match fits every image."""

    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    view_position: tuple[str, ...] = ()
    series_description: str | None = None

    def fits(self, header: Header) -> bool:
        """Whether a header (keyword -> value, e.g. a pydicom Dataset) fits every key given."""
        for key, keyword in _HEADER_KEYS.items():
            wanted = getattr(self, key)
            value = str(header.get(keyword, "") or "").upper()
            if wanted and value not in wanted:
                return False
        if self.series_description is not None:
            text = str(header.get("SeriesDescription", "") or "")
            return re.search(self.series_description, text) is not None
        return True


@dataclass(frozen=True)
class CStoreDestination:
    """A DICOM (DIMSE) peer that results are C-STOREd to.

    Attributes:
        host: Its address (checked against its certificate with ``tls``).
        port: Its DICOM port.
        aet: Its AE title (the called AE title).
        tls: Send over DICOM TLS.
        ca: Certificates (PEM) to trust for TLS; default: the system's.
    """

    host: str
    port: int
    aet: str
    tls: bool = False
    ca: Path | None = None


@dataclass(frozen=True)
class Route:
    """One rule: a match, the model to run and where its SR (and, for a detector with
    ``presentation_state``, a Grayscale Softcopy Presentation State of its boxes) goes."""

    name: str
    task: str
    model: str | None = None
    match: Match = field(default_factory=Match)
    dicomweb: str | None = None
    cstore: CStoreDestination | None = None
    presentation_state: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try sending a result, and the first wait (doubled after each failure)."""

    attempts: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class RoutingConfig:
    """The rules in order, the retry policy and the dead-letter folder."""

    rules: tuple[Route, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter: Path = Path("dead-letter")

    def route_for(self, header: Header) -> Route | None:
        """The first rule whose match fits the header, or ``None``."""
        return next((rule for rule in self.rules if rule.match.fits(header)), None)


def _values(section: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise _fail(section, "values must be text")
    return tuple(item.upper() for item in items)


def _match(section: str, raw: Mapping[str, Any]) -> Match:
    _only(section, raw, {*_HEADER_KEYS, "series_description"})
    pattern = raw.get("series_description")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as error:
            raise _fail(
                section, f"series_description is not a regular expression ({error})"
            ) from None
    lists = {key: _values(f"{section}.{key}", raw[key]) for key in _HEADER_KEYS if key in raw}
    return Match(series_description=None if pattern is None else str(pattern), **lists)


def _route(index: int, raw: Any) -> Route:
    section = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(section, "a rule must be a mapping")
    _only(section, raw, {"name", "match", "task", "model", "destination", "presentation_state"})
    task = raw.get("task")
    if task not in TASKS:
        raise _fail(section, f"task must be one of {list(TASKS)}, not {task!r}")
    presentation_state = raw.get("presentation_state", False)
    if not isinstance(presentation_state, bool):
        raise _fail(section, "presentation_state must be true or false")
    if presentation_state and task != "detection":
        raise _fail(section, "presentation_state draws boxes: it needs task detection")
    destination = raw.get("destination") or {}
    _only(f"{section}.destination", destination, {"dicomweb", "cstore"})
    if len(destination) != 1:
        raise _fail(f"{section}.destination", "give exactly one of dicomweb or cstore")
    cstore = None
    if "cstore" in destination:
        peer = destination["cstore"]
        _only(f"{section}.destination.cstore", peer, {"host", "port", "aet", "tls", "ca"})
        try:
            cstore = CStoreDestination(
                str(peer["host"]),
                int(peer["port"]),
                str(peer["aet"]),
                tls=bool(peer.get("tls", False)) or peer.get("ca") is not None,
                ca=None if peer.get("ca") is None else Path(str(peer["ca"])),
            )
        except (KeyError, TypeError, ValueError):
            raise _fail(f"{section}.destination.cstore", "needs host, port and aet") from None
    return Route(
        name=str(raw.get("name") or f"rule {index + 1}"),
        task=str(task),
        model=None if raw.get("model") is None else str(raw["model"]),
        match=_match(f"{section}.match", raw.get("match") or {}),
        dicomweb=None if "dicomweb" not in destination else str(destination["dicomweb"]),
        cstore=cstore,
        presentation_state=presentation_state,
    )


def routing_from_dict(raw: Mapping[str, Any]) -> RoutingConfig:
    """Validate a routing mapping (as read from YAML) into a :class:`RoutingConfig`.

    Raises:
        ConfigError: A key is unknown, a value is invalid or there are no rules.
    """
    _only("file", raw, {"rules", "retry", "dead_letter"})
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _fail("rules", "give at least one rule")
    retry_raw = raw.get("retry") or {}
    _only("retry", retry_raw, {"attempts", "backoff_s"})
    retry = RetryPolicy(
        attempts=int(retry_raw.get("attempts", 3)), backoff_s=float(retry_raw.get("backoff_s", 1))
    )
    if retry.attempts < 1 or retry.backoff_s < 0:
        raise _fail("retry", "attempts must be at least 1 and backoff_s not negative")
    return RoutingConfig(
        rules=tuple(_route(index, rule) for index, rule in enumerate(rules)),
        retry=retry,
        dead_letter=Path(str(raw.get("dead_letter", "dead-letter"))),
    )


def load_routing(path: Path) -> RoutingConfig:
    """Read and validate a routing file (YAML or JSON).

    Raises:
        InputNotFoundError: The file does not exist.
        ConfigError: It is not valid YAML or not a valid routing configuration.
    """
    if not path.is_file():
        raise InputNotFoundError(str(path), "the routing file does not exist", "check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise _fail(str(path), "it is not valid YAML") from None
    if not isinstance(raw, Mapping):
        raise _fail(str(path), "the file must hold a mapping")
    return routing_from_dict(raw)

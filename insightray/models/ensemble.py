"""Typed card sections for fused detection: ensembles of models and test-time augmentation.

An ensemble is a model card whose ``ensemble`` section lists member models (each a folder or
card path relative to the ensemble card, the SHA-256 of its weights, and a weight) and how
their boxes are fused. Any detection card, single or ensemble, may carry a ``tta`` section
that runs each image also flipped and at other scales and fuses those answers the same way.

Example:
    >>> spec = Ensemble.from_dict({"members": [{"model": "fold0", "sha256": "0" * 64}]})
    >>> spec.fusion.method, spec.fusion.conf_type, spec.members[0].weight
    ('wbf', 'box_and_model_avg', 1.0)
    >>> TestTimeAugmentation.from_dict({"scales": [1.0, 1.25]}).views()
    ((1.0, False), (1.0, True), (1.25, False), (1.25, True))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from insightray.errors import ConfigError

__all__ = ["FUSION_METHODS", "Ensemble", "EnsembleMember", "Fusion", "TestTimeAugmentation"]

#: How the boxes of several models or views become one set: Weighted Boxes Fusion, or
#: non-maximum suppression (plain or soft) kept for comparison.
FUSION_METHODS = ("wbf", "nms", "soft-nms")
#: WBF confidence rules that keep scores in [0, 1] (the library's ``avg`` can exceed 1).
CONF_TYPES = ("box_and_model_avg", "absent_model_aware_avg", "max")

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _fail(problem: str, fix: str = "fix the card") -> ConfigError:
    return ConfigError("model card ensemble", problem, fix)


def _known(data: Mapping[str, Any], cls: type, section: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise _fail(f"{section} is not a mapping")
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(f"{section} has unknown fields {', '.join(unknown)}")
    return dict(data)


@dataclass(frozen=True)
class Fusion:
    """How boxes from several models or views are merged (class by class).

    Attributes:
        method: One of :data:`FUSION_METHODS`.
        iou_threshold: Boxes overlapping more than this are merged (WBF) or suppressed (NMS).
        skip_threshold: Boxes scoring below this are left out before fusion.
        conf_type: WBF's confidence rule, one of :data:`CONF_TYPES`.
        sigma: Soft-NMS Gaussian width.
    """

    method: str = "wbf"
    iou_threshold: float = 0.55
    skip_threshold: float = 0.001
    conf_type: str = "box_and_model_avg"
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise _fail(f"fusion method {self.method!r}", f"use one of {FUSION_METHODS}")
        if self.conf_type not in CONF_TYPES:
            raise _fail(f"conf_type {self.conf_type!r}", f"use one of {CONF_TYPES}")
        for name in ("iou_threshold", "skip_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise _fail(f"fusion {name} {getattr(self, name)} is outside [0, 1]")
        if self.sigma <= 0:
            raise _fail(f"fusion sigma {self.sigma} is not positive")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fusion:
        """Read the JSON form."""
        values = _known(data, cls, "fusion")
        try:
            for name in ("iou_threshold", "skip_threshold", "sigma"):
                if name in values:
                    values[name] = float(values[name])
        except (TypeError, ValueError) as error:
            raise _fail(f"a fusion threshold is not a number ({error})") from error
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Which views of each image are run and fused.

    Attributes:
        hflip: Also run each scale mirrored left to right.
        scales: Input sides as multiples of the model's (the model's own, 1.0, is always
            run); each side is rounded to a multiple of 32.
        fusion: How the views' boxes are merged.
    """

    __test__ = False  # not a pytest test class, despite its name

    hflip: bool = True
    scales: tuple[float, ...] = (1.0, 1.25)
    fusion: Fusion = field(default_factory=Fusion)

    def __post_init__(self) -> None:
        if not self.scales or any(not 0.25 <= scale <= 4.0 for scale in self.scales):
            raise _fail(
                f"tta scales {self.scales}", "use scales between 0.25 and 4, e.g. [1, 1.25]"
            )
        scales = tuple(dict.fromkeys((1.0, *self.scales)))
        object.__setattr__(self, "scales", scales)

    def views(self) -> tuple[tuple[float, bool], ...]:
        """``(scale, flipped)`` of every view, the plain one first."""
        flips = (False, True) if self.hflip else (False,)
        return tuple((scale, flip) for scale in self.scales for flip in flips)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestTimeAugmentation:
        """Read the JSON form."""
        values = _known(data, cls, "tta")
        try:
            if "scales" in values:
                values["scales"] = tuple(float(scale) for scale in values["scales"])
            if "hflip" in values:
                values["hflip"] = bool(values["hflip"])
        except (TypeError, ValueError) as error:
            raise _fail(f"tta scales are not numbers ({error})") from error
        values["fusion"] = Fusion.from_dict(values.get("fusion", {}))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"hflip": self.hflip, "scales": list(self.scales), "fusion": self.fusion.to_dict()}


@dataclass(frozen=True)
class EnsembleMember:
    """One model of an ensemble.

    Attributes:
        model: Its card file or folder, relative to the ensemble card (or absolute).
        sha256: SHA-256 of its weights file; the ensemble refuses other weights.
        weight: Its weight in the fusion.
    """

    model: str
    sha256: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise _fail(f"member {self.model}: sha256 is not 64 lower-case hex digits")
        if self.weight <= 0:
            raise _fail(f"member {self.model}: weight {self.weight} is not positive")


@dataclass(frozen=True)
class Ensemble:
    """The members of an ensemble card and how their boxes are fused.

    Attributes:
        members: At least one member.
        fusion: How the members' boxes are merged.
    """

    members: tuple[EnsembleMember, ...]
    fusion: Fusion = field(default_factory=Fusion)

    def __post_init__(self) -> None:
        if not self.members:
            raise _fail("the ensemble has no members", "list at least one member model")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ensemble:
        """Read the JSON form."""
        values = _known(data, cls, "ensemble")
        try:
            members = tuple(
                EnsembleMember(
                    **_known(item, EnsembleMember, "ensemble member")
                    | {"weight": float(item.get("weight", 1.0))}
                )
                for item in values.get("members", [])
            )
        except (TypeError, ValueError) as error:
            raise _fail(f"a member has the wrong shape ({error})") from error
        return cls(members, Fusion.from_dict(values.get("fusion", {})))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "members": [dataclasses.asdict(member) for member in self.members],
            "fusion": self.fusion.to_dict(),
        }

"""AI versus report: a chest X-ray detector's findings against a report's observations.

Which observations each detector class stands for, and which observations a detector cannot
see at all, are data (``resources/detector_observations.json``). The comparison flags
discrepancies both ways:

* ``model_only``: the model found something that maps to no observation the report states as
  positive or uncertain. ``report_status`` says whether the report denies it (``negative``:
  the report says, for example, the lungs are clear) or does not mention it (``absent``).
* ``report_only``: the report names an observation (positive or uncertain) that the model can
  see but found nothing for.
* ``not_visible``: the report names an observation the model cannot see (it has no class
  for it); informational, so a reader knows the AI says nothing about it.

Example:
    >>> from insightray.nlp.reports.compare import DetectorMapping, compare
    >>> mapping = DetectorMapping()
    >>> statuses = {"Lung Opacity": "negative", "No Finding": "positive"}
    >>> findings = [{"class_name": "ActiveTuberculosis", "score": 0.8, "box": [1, 2, 3, 4]}]
    >>> result = compare(findings, statuses, "cxr-tbx11k-yolov5s", mapping)
    >>> [(d["kind"], d["report_status"]) for d in result["discrepancies"]]
    [('model_only', 'negative')]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError
from insightray.nlp.reports.rules import NO_FINDING, OBSERVATIONS

__all__ = ["MAPPING_PATH", "DetectorMapping", "ModelMapping", "compare"]

#: Detector class -> CheXpert observations, per model.
MAPPING_PATH = Path(__file__).resolve().parents[1] / "resources" / "detector_observations.json"
_STATED = ("positive", "uncertain")


@dataclass(frozen=True)
class ModelMapping:
    """One detector's classes as observations.

    Attributes:
        model: The registered model name.
        classes: Class name -> the observations it stands for.
        findings: Class name -> a readable name of what it finds.
        cannot_see: Observations the model has no class for.
    """

    model: str
    classes: Mapping[str, tuple[str, ...]]
    findings: Mapping[str, str]
    cannot_see: tuple[str, ...]

    @property
    def sees(self) -> tuple[str, ...]:
        """Observations some class maps to, in CheXpert's order."""
        mapped = {o for observations in self.classes.values() for o in observations}
        return tuple(o for o in OBSERVATIONS if o in mapped)


class DetectorMapping:
    """The detector-to-observation mapping file.

    Args:
        path: The JSON file.

    Raises:
        ConfigError: The file is unreadable, or names an observation that is not CheXpert's,
            or states a mapped observation as one it cannot see.
    """

    def __init__(self, path: Path = MAPPING_PATH) -> None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            models = data["models"]
            if not isinstance(models, dict):
                raise TypeError("'models' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                str(path), f"cannot read a 'models' mapping ({error})", "fix the mapping file"
            ) from error
        self.name = f"{path.stem}@{data.get('version', '0')}"
        self._models: dict[str, ModelMapping] = {}
        for model, entry in models.items():
            classes = {
                name: tuple(item.get("observations", []))
                for name, item in entry.get("classes", {}).items()
            }
            mapping = ModelMapping(
                model=model,
                classes=classes,
                findings={n: str(i.get("finding", n)) for n, i in entry["classes"].items()},
                cannot_see=tuple(entry.get("cannot_see", [])),
            )
            named = {o for obs in classes.values() for o in obs} | set(mapping.cannot_see)
            unknown = named - set(OBSERVATIONS[1:])
            if unknown:
                raise ConfigError(
                    str(path), f"{model}: unknown observations {sorted(unknown)}",
                    "use CheXpert's names (not No Finding)",
                )  # fmt: skip
            if set(mapping.sees) & set(mapping.cannot_see):
                raise ConfigError(
                    str(path), f"{model}: an observation is both mapped and not visible",
                    "list it in one place only",
                )  # fmt: skip
            self._models[model] = mapping

    def for_model(self, model: str, class_names: Sequence[str] = ()) -> ModelMapping | None:
        """The mapping of ``model``; else the only one whose classes cover ``class_names``
        (another version or name of the same detector); else ``None``."""
        if model in self._models:
            return self._models[model]
        if class_names:
            covering = [m for m in self._models.values() if set(class_names) <= set(m.classes)]
            if len(covering) == 1:
                return covering[0]
        return None

    @property
    def models(self) -> tuple[str, ...]:
        """The models the file maps."""
        return tuple(self._models)


def compare(
    findings: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, str],
    model: str,
    mapping: DetectorMapping,
) -> dict[str, Any]:
    """Compare a detector's findings with a report's observation statuses.

    Args:
        findings: The detections (``class_name``, ``score``, ``box``), as the analysis API
            and ``insightray detect --json`` give them.
        statuses: Observation label -> ``positive``, ``uncertain``, ``negative`` or
            ``absent`` (a ``ReportLabels``' statuses).
        model: The detector's registered name.
        mapping: The class-to-observation mapping.

    Returns:
        ``model``, ``mapping`` (file and version), ``sees`` and ``cannot_see`` (observations),
        ``agreements`` (observations both state) and ``discrepancies`` (each with ``kind``,
        ``observation(s)``, ``report_status`` and a one-line ``message``). A model the file
        does not map gives no discrepancies and a ``note`` saying so.
    """
    classes = [str(f.get("class_name", f.get("label", ""))) for f in findings]
    known = mapping.for_model(model, classes)
    result: dict[str, Any] = {"model": model, "mapping": mapping.name}
    if known is None:
        return {
            **result, "sees": [], "cannot_see": [], "agreements": [], "discrepancies": [],
            "note": f"no observation mapping for {model}: the findings cannot be compared",
        }  # fmt: skip
    stated = {o for o in OBSERVATIONS[1:] if statuses.get(o) in _STATED}
    report_clear = statuses.get(NO_FINDING) == "positive"
    discrepancies: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, (finding, name) in enumerate(zip(findings, classes, strict=True)):
        observations = known.classes.get(name, ())
        seen.update(observations)
        if set(observations) & stated:
            continue
        denied = report_clear or (
            bool(observations) and all(statuses.get(o) == "negative" for o in observations)
        )
        what = known.findings.get(name, name)
        score = finding.get("score")
        scored = f" ({float(score):.2f})" if isinstance(score, int | float) else ""
        says = "says the lungs are clear" if report_clear else "denies it"
        discrepancies.append({
            "kind": "model_only", "finding": index, "class_name": name,
            "score": score, "box": finding.get("box"), "observations": list(observations),
            "report_status": "negative" if denied else "absent",
            "message": f"The model found {what}{scored}; the report "
            + (says if denied else "does not mention it") + ".",
        })  # fmt: skip
    agreements = [
        {"observation": o, "report_status": statuses[o]} for o in known.sees if o in stated & seen
    ]
    for observation in OBSERVATIONS[1:]:
        if observation not in stated:
            continue
        status = statuses[observation]
        words = "names" if status == "positive" else "suggests"
        if observation in known.sees and observation not in seen:
            discrepancies.append({
                "kind": "report_only", "observation": observation, "report_status": status,
                "message": f"The report {words} {observation.lower()}; "
                "the model found nothing it maps to.",
            })  # fmt: skip
        elif observation not in known.sees:
            discrepancies.append({
                "kind": "not_visible", "observation": observation, "report_status": status,
                "message": f"The report {words} {observation.lower()}; "
                "the model cannot see it (no class for it).",
            })  # fmt: skip
    return {
        **result,
        "sees": list(known.sees),
        "cannot_see": list(known.cannot_see),
        "agreements": agreements,
        "discrepancies": discrepancies,
    }

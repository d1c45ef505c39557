"""What a worklist row says about a study's AI results: "2 findings", "fracture 99 %".

Each result's stored answer is read back (decrypted) and summed up in one short text with a
severity the worklist sorts and filters on: ``"positive"`` (a fracture at or above the model
card's operating point, or at least one detection at the detector's operating point),
``"negative"``, or ``"none"`` (not analysed). Only the latest result of each task counts.

Example:
    >>> brief({"task": "fracture", "fracture": {"probability": 0.991, "threshold": 0.5}})
    {'task': 'fracture', 'text': 'fracture 99 %', 'severity': 'positive', 'score': 0.991}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from insightray.errors import StorageError
from insightray.serving.deps import Services
from insightray.serving.storage.db.models import Result

__all__ = ["SEVERITY_RANK", "brief", "study_triage"]

#: Sort order of severities, most urgent first.
SEVERITY_RANK = {"positive": 2, "negative": 1, "none": 0}


def brief(response: dict[str, Any]) -> dict[str, Any]:
    """One result's summary from its API answer."""
    task = str(response.get("task") or "")
    fracture = response.get("fracture")
    if fracture:
        probability = float(fracture["probability"])
        positive = probability >= float(fracture["threshold"])
        return {
            "task": task,
            "text": f"fracture {probability * 100:.0f} %",
            "severity": "positive" if positive else "negative",
            "score": probability,
        }
    findings = response.get("findings") or []
    count = len(findings)
    return {
        "task": task,
        "text": f"{count} finding{'' if count == 1 else 's'}" if count else "no findings",
        "severity": "positive" if count else "negative",
        "score": max((float(f.get("score", 0.0)) for f in findings), default=0.0),
    }


def study_triage(services: Services, results: Sequence[Result]) -> dict[str, Any]:
    """The worklist summary of a study: the latest result of each task, most severe first."""
    latest: dict[str, Result] = {}
    for result in sorted(results, key=lambda r: r.created_at):
        latest[result.task] = result
    briefs: list[dict[str, Any]] = []
    for result in latest.values():
        try:
            document = json.loads(services.store.get(result.output_sha256))
        except (StorageError, ValueError):  # a damaged blob: the row says so, the list stands
            briefs.append({"task": result.task, "text": "result unreadable",
                           "severity": "none", "score": 0.0})  # fmt: skip
            continue
        briefs.append(brief(document["response"]))
    briefs.sort(key=lambda b: (-SEVERITY_RANK[b["severity"]], -b["score"]))
    if not briefs:
        return {"text": "", "severity": "none", "score": 0.0, "results": []}
    top = briefs[0]
    return {
        "text": " · ".join(b["text"] for b in briefs),
        "severity": top["severity"],
        "score": top["score"],
        "results": briefs,
    }

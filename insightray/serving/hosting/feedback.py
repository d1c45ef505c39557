"""Readers' feedback on AI findings, live performance per model version, and the retraining
trigger.

A reader accepts, rejects or corrects (relabels) each box of a detector result and accepts
or rejects a fracture result's label. Each verdict is a :class:`FindingFeedback` row, written
with its audit record (``feedback.save``) in one transaction. From those rows, per model name
and version:

- **precision**: accepted boxes / judged boxes (a corrected box counts as not accepted: the
  model named the wrong class);
- **agreement**: accepted findings / judged findings, boxes and labels together;
- **recent agreement**: the same over the last ``retrain_window`` verdicts (newest first by
  the time of the verdict).

When the recent agreement of a version that has at least ``retrain_window`` verdicts falls
below ``retrain_agreement``, the **retraining trigger** fires once: the crossing is kept in
:class:`RetrainingTrigger` (shared by every replica), audited as ``retraining.trigger`` and
counted; rising back to the threshold or above re-arms it (``retraining.rearm``). The check
runs in the transaction that saves the verdict, after its audit record, which serialises
writers (PostgreSQL advisory lock, SQLite write lock), so two replicas never both fire.

The trigger fires on drift too (:func:`record_drift`, called by the service's
:class:`~insightray.serving.hosting.drift.DriftMonitor` when a drift window's verdict
changes): ``retraining.trigger`` with outcome ``drift`` (the agreement trigger's outcome is
``agreement``), counted in the same series, re-armed (``retraining.rearm``, outcome ``drift``)
when the window's comparison clears. The retraining itself is a CLI job
(``insightray train ...``), started by a person or a pipeline watching the metric.

Example:
    >>> row = save_feedback(services, who, result_id, 0, "reject")  # doctest: +SKIP
    >>> feedback_figures(services.db, 50)[0].agreement  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from insightray.errors import InputError
from insightray.serving.deps import Principal, Services
from insightray.serving.hosting.analysis import load_result
from insightray.serving.hosting.metrics import FeedbackFigures
from insightray.serving.security.audit import AuditLog, lock_writers
from insightray.serving.storage.db.feedback import (
    VERDICTS,
    FindingFeedback,
    RetrainingTrigger,
)
from insightray.serving.storage.db.models import Result, utc_now
from insightray.serving.storage.db.session import Database

__all__ = [
    "feedback_figures",
    "feedback_json",
    "list_feedback",
    "record_drift",
    "result_findings",
    "save_feedback",
]

_log = logging.getLogger(__name__)


def result_findings(document: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """What a stored result lets a reader judge, in order: ``(kind, model label, at the
    operating point)`` for each box (findings, then the weaker candidates, as the viewer
    numbers them) or the one fracture label."""
    response = document["response"]
    if response.get("fracture") is not None:
        return [("label", str(response["fracture"]["label"]), True)]
    findings = response.get("findings") or []
    candidates = response.get("candidates") or []
    return [("box", str(f["label"]), True) for f in findings] + [
        ("box", str(f["label"]), False) for f in candidates
    ]


def save_feedback(
    services: Services,
    who: Principal,
    result_id: str,
    finding: int,
    verdict: str,
    label: str | None = None,
) -> FindingFeedback:
    """Store ``who``'s verdict on finding ``finding`` of a result (replacing their earlier
    one), audited, and run the retraining trigger of the result's model version.

    Raises:
        NotFoundError: No such result, or its study is deleted or someone else's (404).
        InputError: An unknown verdict, a finding the result does not have, or a correction
            without a label or of a fracture label (422).
    """
    result, document = load_result(services, who, result_id)
    subject = f"feedback on result {result_id}"
    judged = result_findings(document)
    if verdict not in VERDICTS:
        raise InputError(subject, f"unknown verdict {verdict!r}", f"use {', '.join(VERDICTS)}")
    if not 0 <= finding < len(judged):
        raise InputError(
            subject, f"the result has {len(judged)} finding(s), not a number {finding}",
            "number findings from 0 in the result's findings, then candidates",
        )  # fmt: skip
    kind, model_label, operating = judged[finding]
    if verdict == "correct" and (kind != "box" or not label):
        raise InputError(
            subject, "only a box can be corrected, and a correction needs its label",
            "send accept or reject for a fracture label; send label= with correct",
        )  # fmt: skip
    with services.db.session() as session:
        # The audit record first: it takes the lock that serialises writers (PostgreSQL
        # advisory lock; SQLite's write lock is taken up front), so two requests never both
        # insert one reader's verdict, nor both fire the trigger.
        services.record(
            who, "feedback.save", verdict, None, session, study_id=result.study_id,
            model_name=result.model_name, model_version=result.model_version,
        )  # fmt: skip
        row = session.scalar(
            select(FindingFeedback).where(
                FindingFeedback.result_id == result.id,
                FindingFeedback.finding == finding,
                FindingFeedback.username == who.username,
            )
        )
        if row is None:
            row = FindingFeedback(
                result_id=result.id, study_id=result.study_id, finding=finding, kind=kind,
                model_name=result.model_name, model_version=result.model_version,
                model_label=model_label, operating=operating, username=who.username,
                role=who.role,
            )  # fmt: skip
            session.add(row)
        row.verdict, row.label = verdict, label if verdict == "correct" else None
        row.updated_at = utc_now()
        session.flush()
        _check_trigger(services, who, session, result.model_name, result.model_version)
        session.expunge(row)
    return row


def _check_trigger(
    services: Services, who: Principal, session: Session, name: str, version: str
) -> None:
    """Fire or re-arm the retraining trigger of one model version (inside the saving
    transaction, after its audit record took the writers' lock)."""
    threshold = services.settings.retrain_agreement
    window = services.settings.retrain_window
    if threshold <= 0:
        return
    recent = _recent_agreement(session, name, version, window)
    if recent is None:
        return
    state = _trigger_state(session, name, version)
    state.agreement = recent
    below = recent < threshold
    if below == state.below:
        return
    state.below = below
    _fire(session, state, below, "agreement", services.audit, who.username, who.role)
    _log.warning(
        "%s: %s %s agreement %.3f over the last %d verdicts (threshold %.3f)",
        _action(below), name, version, recent, window, threshold,
    )  # fmt: skip


def record_drift(db: Database, audit: AuditLog, name: str, version: str, drifted: bool) -> bool:
    """Fire (``drifted``) or re-arm the retraining trigger of a model version on drift,
    audited as the ``system`` actor; returns whether the shared state changed.

    Replicas call this when their own window's verdict changes: the first to report a
    change fires, the others find the state already set.
    """
    with db.session() as session:
        lock_writers(session)  # serialise with other replicas and the agreement trigger
        state = _trigger_state(session, name, version)
        if state.drifted == drifted:
            return False
        state.drifted = drifted
        _fire(session, state, drifted, "drift", audit, "system", "system")
    _log.warning("%s: %s %s drift window", _action(drifted), name, version)
    return True


def _trigger_state(session: Session, name: str, version: str) -> RetrainingTrigger:
    state = session.scalar(
        select(RetrainingTrigger).where(
            RetrainingTrigger.model_name == name, RetrainingTrigger.model_version == version
        )
    )
    if state is None:
        state = RetrainingTrigger(
            model_name=name, model_version=version, below=False, drifted=False, crossings=0
        )
        session.add(state)
    return state


def _fire(
    session: Session,
    state: RetrainingTrigger,
    fired: bool,
    reason: str,
    audit: AuditLog,
    actor: str,
    role: str,
) -> None:
    """Count and audit one change of a trigger (``reason``: ``agreement`` or ``drift``)."""
    state.changed_at = utc_now()
    if fired:
        state.crossings += 1
    audit.append_in(
        session, actor, role, _action(fired), outcome=reason,
        model_name=state.model_name, model_version=state.model_version,
    )  # fmt: skip


def _action(fired: bool) -> str:
    return "retraining.trigger" if fired else "retraining.rearm"


def _recent_agreement(session: Session, name: str, version: str, window: int) -> float | None:
    """Accepted share of the last ``window`` verdicts; ``None`` with fewer than that."""
    verdicts = list(
        session.scalars(
            select(FindingFeedback.verdict)
            .where(FindingFeedback.model_name == name, FindingFeedback.model_version == version)
            .order_by(FindingFeedback.updated_at.desc(), FindingFeedback.id)
            .limit(window)
        )
    )
    if len(verdicts) < window:
        return None
    return sum(v == "accept" for v in verdicts) / len(verdicts)


def list_feedback(
    services: Services, who: Principal, result_id: str
) -> tuple[Result, list[FindingFeedback]]:
    """A result the caller may see and their verdicts on it, by finding.

    Raises:
        NotFoundError: No such result, or not visible (404).
    """
    result, _ = load_result(services, who, result_id)
    query = (
        select(FindingFeedback)
        .where(FindingFeedback.result_id == result.id, FindingFeedback.username == who.username)
        .order_by(FindingFeedback.finding)
    )
    with services.db.session(read_only=True) as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    return result, rows


def feedback_json(row: FindingFeedback) -> dict[str, Any]:
    """The API form of a verdict."""
    return {
        "result_id": row.result_id,
        "study_id": row.study_id,
        "finding": row.finding,
        "kind": row.kind,
        "model": {"name": row.model_name, "version": row.model_version},
        "model_label": row.model_label,
        "operating": row.operating,
        "verdict": row.verdict,
        "label": row.label,
        "user": row.username,
        "updated_at": row.updated_at.isoformat(),
    }


def feedback_figures(db: Database, window: int) -> list[FeedbackFigures]:
    """Live performance of every model version with verdicts or a retraining trigger state,
    from the database (so every replica reports the same); verdicts on deleted studies still
    count."""
    accepted = func.sum(case((FindingFeedback.verdict == "accept", 1), else_=0))
    model, version, kind = (
        FindingFeedback.model_name, FindingFeedback.model_version, FindingFeedback.kind
    )  # fmt: skip
    query = select(model, version, kind, func.count(), accepted).group_by(model, version, kind)
    with db.session(read_only=True) as session:
        counts: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
        for row in session.execute(query):
            counts.setdefault((row[0], row[1]), {})[row[2]] = (int(row[3]), int(row[4] or 0))
        states = {
            (s.model_name, s.model_version): s for s in session.scalars(select(RetrainingTrigger))
        }
        figures = []
        for name, number in sorted(set(counts) | set(states)):
            state = states.get((name, number))
            figures.append(
                FeedbackFigures(
                    model=name,
                    version=number,
                    judged=counts.get((name, number), {}),
                    recent_agreement=_recent_agreement(session, name, number, window),
                    retraining_needed=bool(state and (state.below or state.drifted)),
                    triggers=state.crossings if state else 0,
                )
            )
    return figures

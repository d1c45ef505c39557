"""``POST /v1/assistant/ask``: cited answers to health questions, with conversation memory
kept in the service database (any replica continues a conversation);
``DELETE /v1/assistant/conversations/{id}`` forgets one (audited)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.assistant.responses import NOTICE
from insightray.assistant.triage import Triage
from insightray.errors import NotFoundError
from insightray.serving.deps import AssistantUser, AuditDep, Principal, Services, ServicesDep
from insightray.serving.hosting.index_preparation import IndexPreparingError
from insightray.serving.storage.conversations import DatabaseConversations

router = APIRouter(prefix="/v1/assistant", tags=["assistant"])
#: Triage needs no index: it answers even while the index is being prepared.
_TRIAGE: list[Triage] = []


class AskRequest(BaseModel):
    """A question, and the conversation it continues (from the previous answer)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2_000)
    conversation_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def conversations_of(services: Services, who: Principal) -> DatabaseConversations:
    """The database conversation store for ``who``'s requests."""
    return DatabaseConversations(
        services.db,
        services.store.keyring,
        services.audit,
        who.username,
        who.role,
        ttl_s=services.settings.conversation_ttl_s,
    )


@router.post("/ask")
async def ask(
    body: AskRequest,
    services: ServicesDep,
    who: AssistantUser,
    audit: AuditDep,
) -> dict[str, Any]:
    """``AssistantAnswer.to_dict()`` plus the model; 503 when no knowledge index is built."""
    started = time.perf_counter()
    entry = (await run_in_threadpool(services.registry.choose, "assistant", who.username)).served
    try:
        runner = await run_in_threadpool(services.host.loader.assistant_runner, entry)
    except IndexPreparingError as preparing:
        return await run_in_threadpool(_preparing, body, preparing.percent)
    store = conversations_of(services, who)
    answer = await services.host.run(runner.ask, body.question, body.conversation_id, store)
    seconds = time.perf_counter() - started
    services.metrics.observe_prediction("assistant", entry.name, entry.version, seconds)
    await audit.arecord(
        "assistant.ask", model_name=entry.name, model_version=entry.version,
        input_sha256=hashlib.sha256(body.question.encode()).hexdigest(),
    )  # fmt: skip
    return {**answer, "model": {"name": entry.name, "version": entry.version}}


@router.delete("/conversations/{conversation_id}")
async def forget(conversation_id: str, services: ServicesDep, who: AssistantUser) -> dict[str, Any]:
    """Delete one of the caller's conversations (audited); 404 when there is none."""
    store = conversations_of(services, who)
    if not await run_in_threadpool(store.delete, conversation_id[:64]):
        raise NotFoundError(
            f"conversation {conversation_id[:64]}", "no such conversation of yours",
            "start a new one with POST /v1/assistant/ask",
        )  # fmt: skip
    return {"deleted": conversation_id[:64]}


def _preparing(body: AskRequest, percent: int) -> dict[str, Any]:
    """The answer while the index is built: "preparing, N %", with the triage of the
    question (what to do now comes first when it is urgent or an emergency)."""
    if not _TRIAGE:
        _TRIAGE.append(Triage())
    triage = _TRIAGE[0].assess(body.question)
    status = (
        f"Preparing, {percent} %: the assistant is building its knowledge base on first "
        "start; please ask again in a few minutes."
    )
    first = f"What to do now: {triage.advice}\n\n" if triage.acts_now else ""
    return {
        "kind": "preparing",
        "preparing": {"percent": percent},
        "answer": f"{first}{status}\n\n{NOTICE}",
        "question": body.question,
        "triage": triage.level,
        "triage_detail": triage.to_dict(),
        "emergency": triage.level == "emergency",
        "conversation_id": body.conversation_id,
        "sources": [],
        "citations": [],
        "notice": NOTICE,
    }

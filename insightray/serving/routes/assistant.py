"""``POST /v1/assistant/ask``: cited answers to health questions, with conversation memory."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AssistantUser, AuditDep, ServicesDep

router = APIRouter(prefix="/v1/assistant", tags=["assistant"])


class AskRequest(BaseModel):
    """A question, and the conversation it continues (from the previous answer)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2_000)
    conversation_id: str | None = Field(default=None, max_length=64)


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
    runner = await run_in_threadpool(services.host.loader.assistant_runner, entry)
    answer = await services.host.run(runner.ask, body.question, body.conversation_id)
    seconds = time.perf_counter() - started
    services.metrics.observe_prediction("assistant", entry.name, entry.version, seconds)
    await audit.arecord(
        "assistant.ask", model_name=entry.name, model_version=entry.version,
        input_sha256=hashlib.sha256(body.question.encode()).hexdigest(),
    )  # fmt: skip
    return {**answer, "model": {"name": entry.name, "version": entry.version}}

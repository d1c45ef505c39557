"""The model registry over HTTP: list, inspect, register a version, change stage and traffic."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from insightray.errors import NotFoundError
from insightray.serving.deps import AuditDep, ModelsAdmin, ModelsReader, ServicesDep
from insightray.serving.hosting.rollout import ModelEntry

router = APIRouter(prefix="/v1/models", tags=["models"])

Stage = Literal["staging", "production", "archived"]


class RegisterRequest(BaseModel):
    """A model card on the server's disk (weights beside it) to add as a new version."""

    model_config = ConfigDict(extra="forbid")

    card_path: str = Field(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")
    stage: Stage = "staging"
    traffic_percent: int = Field(default=0, ge=0, le=100)
    shadow: bool = False


class UpdateRequest(BaseModel):
    """Stage, traffic share (staging versions) and shadow flag; omitted fields stay."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage | None = None
    traffic_percent: int | None = Field(default=None, ge=0, le=100)
    shadow: bool | None = None


def _model_json(name: str, entries: list[ModelEntry]) -> dict[str, Any]:
    return {
        "name": name,
        "task": entries[0].task,
        "versions": [entry.to_dict() for entry in entries],
    }


@router.get("")
def list_models(services: ServicesDep, who: ModelsReader) -> dict[str, Any]:
    """Every registered model with its versions."""
    by_name: dict[str, list[ModelEntry]] = {}
    for entry in services.registry.versions():
        by_name.setdefault(entry.name, []).append(entry)
    return {"items": [_model_json(name, entries) for name, entries in sorted(by_name.items())]}


@router.get("/{name}")
def get_model(name: str, services: ServicesDep, who: ModelsReader) -> dict[str, Any]:
    """One model and its versions."""
    entries = services.registry.versions(name)
    if not entries:
        raise NotFoundError(f"model {name}", "no such model", "list /v1/models")
    return _model_json(name, entries)


@router.post("/{name}/versions", status_code=201)
def register_version(
    name: str, body: RegisterRequest, services: ServicesDep, who: ModelsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """Register a new version from a model card path (checked against its weights)."""
    entry = services.registry.register(
        name,
        body.card_path,
        stage=body.stage,
        traffic_percent=body.traffic_percent,
        shadow=body.shadow,
    )
    audit.record("model.register", model_name=entry.name, model_version=entry.version)
    return entry.to_dict()


@router.put("/{name}/versions/{version}")
def update_version(
    name: str,
    version: str,
    body: UpdateRequest,
    services: ServicesDep,
    who: ModelsAdmin,
    audit: AuditDep,
) -> dict[str, Any]:
    """Change a version's stage, traffic share or shadow flag: effective at once."""
    entry = services.registry.update(
        name, version, stage=body.stage, traffic_percent=body.traffic_percent, shadow=body.shadow
    )
    audit.record("model.update", model_name=entry.name, model_version=entry.version)
    return entry.to_dict()

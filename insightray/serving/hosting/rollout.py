"""The model registry: versions of each model, their stage, traffic share and shadow flag.

Every version is a row of the ``ModelVersion`` table: its weights' SHA-256, its model card
(with where the card lives) and a stage, ``staging``, ``production`` or ``archived``. Which
version answers a request is read from the database on every call, so promoting a version
or changing a traffic split takes effect at once, in every replica, without a restart.

Routing, per model name:

- versions in ``staging`` with ``traffic_percent > 0`` (and not shadow) are canaries or A/B
  arms: each takes that share of the users;
- the one ``production`` version takes the remaining share;
- versions with ``shadow`` set also run on every request, and their result is recorded but
  never returned.

A user always lands in the same arm: the bucket is ``sha256(user, model) mod 100``, so a
user sees one version for as long as the split stays the same.

Example:
    >>> registry = ModelRegistry(db)  # doctest: +SKIP
    >>> registry.register_bundled()  # doctest: +SKIP
    >>> registry.choose("cxr", user="alice").served.version  # doctest: +SKIP
    '0.1.0'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from insightray.errors import ConfigError, ConflictError, NotFoundError, ServiceUnavailableError
from insightray.models import ModelCard, load_card
from insightray.models.catalog import (
    TASKS,
    bundled_models,
    bundled_models_dir,
    find_task,
    sha256_file,
)
from insightray.serving.storage.db.models import ModelVersion
from insightray.serving.storage.db.session import Database

__all__ = [
    "STAGES",
    "ModelEntry",
    "ModelRegistry",
    "Selection",
    "service_task",
    "user_bucket",
]

STAGES = ("staging", "production", "archived")
_BUNDLED = "bundled:"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model version."""

    name: str
    version: str
    task: str
    card: ModelCard
    card_path: Path
    weights_sha256: str
    stage: str
    traffic_percent: int
    shadow: bool
    created_at: datetime

    @property
    def key(self) -> str:
        """``name:version``, unique in the registry."""
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the API returns."""
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "stage": self.stage,
            "traffic_percent": self.traffic_percent,
            "shadow": self.shadow,
            "weights_sha256": self.weights_sha256,
            "created_at": self.created_at.isoformat(),
            "card": self.card.to_dict(),
        }


@dataclass(frozen=True)
class Selection:
    """The version that answers a request and the shadow versions that also run."""

    served: ModelEntry
    shadows: tuple[ModelEntry, ...] = ()


def _checked_weights(card: ModelCard, path: Path) -> str:
    """The SHA-256 that identifies a card's weights, after checking them (an ensemble's
    members each against its list: :func:`~insightray.engine.ensemble.verify_members`)."""
    if card.ensemble is not None:
        from insightray.engine.ensemble import verify_members

        return verify_members(card, path)
    weights = path.parent / (card.weights_file or "")
    if card.weights_file is None or not weights.is_file():
        raise ConfigError(str(path), "the weights file is missing", "put it beside the card")
    if card.weights_sha256 != sha256_file(weights):
        raise ConfigError(
            str(weights), "the weights do not match the card's SHA-256", "re-export the model"
        )
    return card.weights_sha256


def user_bucket(user: str, model: str) -> int:
    """The user's traffic bucket for a model, 0 to 99, stable across processes.

    Example:
        >>> user_bucket("alice", "cxr") == user_bucket("alice", "cxr")
        True
    """
    digest = hashlib.sha256(f"{user}\0{model}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


class ModelRegistry:
    """Model versions stored in the database; see the module docstring for routing."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register_bundled(self) -> list[ModelEntry]:
        """Register every bundled model version not registered yet (first start, upgrades).

        A model's first version becomes ``production``; later ones arrive in ``staging``.
        """
        added = []
        for folder in bundled_models():
            card = load_card(bundled_models_dir() / folder / "card.json")
            if not _served(card.task):
                continue
            try:
                added.append(self._insert(folder, card, f"{_BUNDLED}{folder}", auto_stage=True))
            except ConflictError:
                continue  # registered before (or by another replica starting at once)
        return added

    def register(
        self,
        name: str,
        card_path: str | Path,
        *,
        stage: str = "staging",
        traffic_percent: int = 0,
        shadow: bool = False,
    ) -> ModelEntry:
        """Register a model card (and its weights beside it) as a new version of ``name``.

        Raises:
            InputNotFoundError: The card cannot be read.
            ConfigError: Unknown task, missing weights or a weights checksum mismatch.
            ConflictError: The version exists or the task differs from the model's.
        """
        path = Path(card_path)
        card = load_card(path)
        if not _served(card.task):
            known = ", ".join(task.name for task in TASKS)
            raise ConfigError(str(path), f"no service task serves {card.task!r}", f"use {known}")
        digest = _checked_weights(card, path)
        entry = self._insert(name, card, str(path.resolve()), auto_stage=False, digest=digest)
        return self.update(
            name, entry.version, stage=stage, traffic_percent=traffic_percent, shadow=shadow
        )

    def versions(self, name: str | None = None) -> list[ModelEntry]:
        """Registered versions (of one model, or all), oldest first."""
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
        if name is not None:
            query = query.where(ModelVersion.name == name)
        with self.db.session(read_only=True) as session:
            return [_entry(row) for row in session.scalars(query)]

    def get(self, name: str, version: str) -> ModelEntry:
        """One version.

        Raises:
            NotFoundError: No such version.
        """
        for entry in self.versions(name):
            if entry.version == version:
                return entry
        raise NotFoundError(f"model {name} {version}", "no such version", "list /v1/models")

    def update(
        self,
        name: str,
        version: str,
        *,
        stage: str | None = None,
        traffic_percent: int | None = None,
        shadow: bool | None = None,
    ) -> ModelEntry:
        """Change a version's stage, traffic share or shadow flag; effective at once.

        Promoting a version to ``production`` archives the previous production version;
        archiving one clears its traffic and shadow flag. The production version's share is
        always what the staging versions leave (it is recomputed, not set).

        Raises:
            NotFoundError: No such version.
            ConfigError: An unknown stage, a share outside 0-100, canary shares over 100,
                or traffic or shadow on an archived version.
        """
        if stage is not None and stage not in STAGES:
            raise ConfigError(f"stage {stage!r}", "unknown stage", f"use {', '.join(STAGES)}")
        if traffic_percent is not None and not 0 <= traffic_percent <= 100:
            raise ConfigError(f"traffic_percent {traffic_percent}", "outside 0-100", "fix it")
        with self.db.session() as session:
            rows = list(session.scalars(select(ModelVersion).where(ModelVersion.name == name)))
            target = next((row for row in rows if row.version == version), None)
            if target is None:
                raise NotFoundError(f"model {name} {version}", "no such version", "list them")
            if stage == "production":
                for row in rows:
                    if row is not target and row.stage == "production":
                        row.stage, row.traffic_percent, row.shadow = "archived", 0, False
            if stage is not None:
                target.stage = stage
            if traffic_percent is not None:
                target.traffic_percent = traffic_percent
            if shadow is not None:
                target.shadow = shadow
            if stage == "archived":
                target.traffic_percent, target.shadow = 0, False
            _settle_split(name, rows)
            entry = _entry(target)
        return entry

    def choose(self, task: str, user: str, name: str | None = None) -> Selection:
        """The version that serves ``user`` for ``task`` (of model ``name`` or the default).

        Raises:
            NotFoundError: The named model does not exist or serves another task.
            ServiceUnavailableError: No model serves the task, or no version takes this user.
        """
        name = name or self.default_name(task)
        rows = [entry for entry in self.versions(name) if entry.stage != "archived"]
        if not rows or rows[0].task != task:
            raise NotFoundError(
                f"model {name}", f"no model of that name serves {task}", "see /v1/models"
            )
        bucket = user_bucket(user, name)
        served = None
        share = 0
        for entry in _canaries(rows):
            share += entry.traffic_percent
            if bucket < share:
                served = entry
                break
        if served is None:
            served = next((entry for entry in rows if entry.stage == "production"), None)
        if served is None:
            raise ServiceUnavailableError(
                f"model {name}", "no production version serves this user", "promote a version"
            )
        shadows = tuple(entry for entry in rows if entry.shadow and entry.key != served.key)
        return Selection(served, shadows)

    def default_name(self, task: str) -> str:
        """The model a task uses when none is named.

        Raises:
            ServiceUnavailableError: No registered model serves ``task``.
        """
        names = sorted({entry.name for entry in self.versions() if entry.task == task})
        preferred = find_task(task).default_model
        if preferred in names:
            return preferred
        if not names:
            raise ServiceUnavailableError(
                f"task {task}", "no model for this task is installed", "register one"
            )
        return names[0]

    def _insert(
        self, name: str, card: ModelCard, source: str, *, auto_stage: bool, digest: str = ""
    ) -> ModelEntry:
        stored = {**card.to_dict(), "card_path": source}
        try:
            with self.db.session() as session:
                existing = session.scalars(
                    select(ModelVersion).where(ModelVersion.name == name)
                ).all()
                if any(row.version == card.version for row in existing):
                    raise ConflictError(
                        f"model {name} {card.version}", "this version is registered", "bump it"
                    )
                if existing and service_task(card.task) != _entry(existing[0]).task:
                    raise ConflictError(
                        f"model {name}", "its versions serve another task", "use a new name"
                    )
                first = not any(row.stage == "production" for row in existing)
                row = ModelVersion(
                    name=name,
                    version=card.version,
                    weights_sha256=digest or card.weights_sha256 or "",
                    card=stored,
                    stage="production" if auto_stage and first else "staging",
                    traffic_percent=100 if auto_stage and first else 0,
                    shadow=False,
                )
                session.add(row)
                session.flush()
                entry = _entry(row)
        except IntegrityError as error:
            raise ConflictError(
                f"model {name} {card.version}", "this version is registered", "bump it"
            ) from error
        return entry


def _canaries(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    return [
        entry
        for entry in entries
        if entry.stage == "staging" and not entry.shadow and entry.traffic_percent > 0
    ]


def _settle_split(name: str, rows: Sequence[ModelVersion]) -> None:
    """Check the shares and give the production version what the staging ones leave."""
    entries = [_entry(row) for row in rows]
    for entry in entries:
        if entry.stage == "archived" and (entry.traffic_percent or entry.shadow):
            raise ConfigError(
                f"model {name} {entry.version}",
                "an archived version takes no traffic and runs in no shadow",
                "move it to staging first",
            )
        if entry.shadow and entry.traffic_percent:
            raise ConfigError(
                f"model {name} {entry.version}",
                "a shadow version serves no traffic",
                "set traffic_percent to 0 or turn shadow off",
            )
    canary_share = sum(entry.traffic_percent for entry in _canaries(entries))
    if canary_share > 100:
        raise ConfigError(f"model {name}", "the staging shares add up to over 100 %", "lower them")
    for row in rows:
        if row.stage == "production":
            row.traffic_percent = 100 - canary_share


def service_task(card_task: str) -> str:
    """The service's name for a card's task (``detection`` is served as ``cxr``)."""
    return find_task(card_task).service_name


def _served(card_task: str) -> bool:
    return any(card_task in (task.name, task.service_name) for task in TASKS)


def _entry(row: ModelVersion) -> ModelEntry:
    stored = dict(row.card)
    source = str(stored.pop("card_path"))
    if source.startswith(_BUNDLED):
        card_path = bundled_models_dir() / source.removeprefix(_BUNDLED) / "card.json"
    else:
        card_path = Path(source)
    card = ModelCard.from_dict(stored)
    return ModelEntry(
        name=row.name,
        version=row.version,
        task=service_task(card.task),
        card=card,
        card_path=card_path,
        weights_sha256=row.weights_sha256 or "",
        stage=row.stage,
        traffic_percent=row.traffic_percent,
        shadow=row.shadow,
        created_at=row.created_at,
    )

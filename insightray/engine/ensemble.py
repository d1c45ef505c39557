"""Detector ensembles as models: open an ensemble card's members, or write an ensemble card.

An ensemble card is a ``card.json`` with task ``detection``, no weights of its own and an
``ensemble`` section (:class:`~insightray.models.ensemble.Ensemble`): its members' card paths
(relative to the ensemble's folder), the SHA-256 of each member's weights, their weights and
the fusion. :func:`insightray.engine.load_predictor` opens it like any model, so
``--model ENSEMBLE_DIR`` works wherever ``--model`` does (``detect``, ``evaluate detect``,
``serve``, the model registry and A/B rollouts).

Example:
    >>> write_ensemble_card(["runs/fold0/model", "runs/fold1/model"], "models/folds")
    ... # doctest: +SKIP
    PosixPath('models/folds/card.json')
    >>> load_predictor("models/folds", task="detection").members  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from insightray.engine.fusion import FusionMember
from insightray.engine.predictor import open_backend
from insightray.errors import ConfigError
from insightray.models import ModelCard, load_card, save_card
from insightray.models.catalog import resolve_card
from insightray.models.ensemble import Ensemble, EnsembleMember, Fusion

__all__ = ["ensemble_digest", "open_members", "verify_members", "write_ensemble_card"]


def open_members(
    card: ModelCard, card_path: Path, backend: str = "auto", device: str = "cpu"
) -> tuple[FusionMember, ...]:
    """Open every member of an ensemble card on ``backend``.

    Raises:
        ConfigError: The card is no ensemble, a member is not a detector of the same labels,
            is itself an ensemble, or its card's SHA-256 differs from the ensemble's list.
        InputNotFoundError: A member does not exist.
        CorruptFileError: A member's weights differ from its card's SHA-256.
    """
    if card.ensemble is None:
        raise ConfigError(str(card_path), "this card has no ensemble section", "add members")
    members = []
    for listed in card.ensemble.members:
        member_path = resolve_card(_beside(card_path, listed.model), default="")
        member = load_card(member_path)
        problem = _mismatch(card, member, listed)
        if problem:
            raise ConfigError(
                f"{card_path}: member {listed.model}", problem, "rebuild the ensemble card"
            )
        opened = open_backend(backend, member, member_path, device)
        channels = opened.input_channels
        pad = member.preprocessing.pad_value
        members.append(
            FusionMember(opened, member.input_size, channels, pad, listed.weight, listed.model)
        )
    return tuple(members)


def verify_members(card: ModelCard, card_path: Path) -> str:
    """Check every member's card and weights file; return :func:`ensemble_digest`.

    Raises:
        ConfigError: As :func:`open_members`, or a member's card names no weights file.
        CorruptFileError: A member's weights differ from the SHA-256 listed.
    """
    from insightray.engine.weights import verify_checksum

    if card.ensemble is None:
        raise ConfigError(str(card_path), "this card has no ensemble section", "add members")
    for listed in card.ensemble.members:
        member_path = resolve_card(_beside(card_path, listed.model), default="")
        member = load_card(member_path)
        problem = _mismatch(card, member, listed) or (
            "" if member.weights_file else "its card names no weights file"
        )
        if problem:
            raise ConfigError(
                f"{card_path}: member {listed.model}", problem, "rebuild the ensemble card"
            )
        verify_checksum(member, member_path.parent / str(member.weights_file))
    return ensemble_digest(card)


def ensemble_digest(card: ModelCard) -> str:
    """SHA-256 identifying an ensemble: its members' weights, weights and fusion."""
    if card.ensemble is None:
        raise ConfigError(card.name, "this card has no ensemble section", "add members")
    text = json.dumps(
        card.ensemble.to_dict()
        | {"members": sorted((m.sha256, m.weight) for m in card.ensemble.members)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _beside(card_path: Path, model: str) -> str:
    path = Path(model)
    return str(path if path.is_absolute() else card_path.parent / path)


def _mismatch(ensemble: ModelCard, member: ModelCard, listed: EnsembleMember) -> str:
    if member.ensemble is not None:
        return "a member is itself an ensemble"
    if member.task != "detection":
        return f"it is a {member.task} model"
    if member.labels != ensemble.labels:
        return f"its labels {list(member.labels)} differ from the ensemble's"
    if member.weights_sha256 != listed.sha256:
        return "its weights' SHA-256 differs from the one the ensemble lists"
    return ""


def write_ensemble_card(
    members: Sequence[str | Path],
    out_dir: str | Path,
    *,
    weights: Sequence[float] | None = None,
    fusion: Fusion | None = None,
    name: str = "ensemble",
    version: str = "0.1.0",
    notes: str = "",
) -> Path:
    """Write ``out_dir/card.json`` for an ensemble of trained detectors.

    Member paths are stored relative to ``out_dir`` (so the folder can move with its members)
    with the SHA-256 their cards give; the labels, thresholds and training data come from the
    members, which must agree on labels.

    Raises:
        ConfigError: No members, a weight count that differs, or members that disagree.
    """
    if not members:
        raise ConfigError("ensemble", "no member models given", "name at least one model")
    chosen = list(weights) if weights is not None else [1.0] * len(members)
    if len(chosen) != len(members):
        raise ConfigError(
            "ensemble",
            f"{len(chosen)} weights for {len(members)} members",
            "give one weight per member",
        )
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    paths = [resolve_card(member, default="") for member in members]
    cards = [load_card(path) for path in paths]
    first = cards[0]
    listed = []
    for path, card, weight in zip(paths, cards, chosen, strict=True):
        if card.task != "detection" or card.labels != first.labels or card.ensemble is not None:
            raise ConfigError(
                str(path),
                "members must be single detectors with equal labels",
                "choose detectors trained on the same classes",
            )
        if card.weights_sha256 is None:
            raise ConfigError(str(path), "the card has no weights_sha256", "add it (sha256sum)")
        relative = os.path.relpath(path.resolve(), target.resolve())
        listed.append(EnsembleMember(relative, card.weights_sha256, float(weight)))
    ensemble = ModelCard(
        name=name,
        task="detection",
        version=version,
        labels=first.labels,
        input_size=first.input_size,
        preprocessing=dataclasses.replace(first.preprocessing),
        thresholds=first.thresholds,
        training_data="; ".join(dict.fromkeys(card.training_data for card in cards)),
        data_licence=first.data_licence,
        notes=notes or f"Ensemble of {len(cards)} detectors fused per image.",
        ensemble=Ensemble(tuple(listed), fusion or Fusion()),
    )
    card_path = target / "card.json"
    save_card(ensemble, card_path)
    return card_path

"""A registry of model builders and the model cards that describe trained weights.

Builders are plain functions that return an ``nn.Module``; :func:`register_model` records them
under a name and a task, :func:`create_model` calls them by name. A :class:`ModelCard` travels
with a set of weights as JSON and says what the model does, on what data, and how well.

Example:
    >>> import torch
    >>> from insightray.models import create_model, list_models
    >>> "yolov5s" in list_models(task="detection")
    True
    >>> model = create_model("yolov5n", num_classes=2)
    >>> isinstance(model, torch.nn.Module)
    True
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from insightray.errors import ConfigError, InputNotFoundError

__all__ = [
    "ModelCard",
    "create_model",
    "list_models",
    "load_card",
    "model_task",
    "register_model",
    "save_card",
]

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

DEFAULT_TASK = "general"


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    task: str


# Filled by the @register_model decorators as model modules are imported (timm-style).
_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, task: str = DEFAULT_TASK) -> Callable[[BuilderT], BuilderT]:
    """Record a builder function under ``name`` so :func:`create_model` can find it.

    Args:
        name: Unique model name, e.g. ``"yolov5s"``.
        task: What the model does, e.g. ``"detection"`` or ``"classification"``.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ConfigError: If a different builder already uses ``name``.

    Example:
        In a model module (runs once, when the module is imported)::

            @register_model("fracture_resnet18", task="classification")
            def fracture_resnet18(num_classes: int, **kwargs: Any) -> nn.Module:
                return FractureClassifier(num_classes, depth=18, **kwargs)
    """

    def decorator(builder: BuilderT) -> BuilderT:
        existing = _REGISTRY.get(name)
        if existing is not None and _qualified_name(existing.builder) != _qualified_name(builder):
            raise ConfigError(
                name,
                f"the model name is already registered by {_qualified_name(existing.builder)}",
                "choose another name",
            )
        _REGISTRY[name] = _Entry(builder=builder, task=task)
        return builder

    return decorator


def _qualified_name(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def list_models(task: str | None = None) -> list[str]:
    """Return the registered model names, sorted, optionally only those of one task.

    Args:
        task: Keep only models of this task; ``None`` keeps all.

    Returns:
        Sorted model names.
    """
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)


def model_task(name: str) -> str:
    """Return the task a registered model was registered with.

    Raises:
        ConfigError: If ``name`` is not registered.
    """
    return _lookup(name).task


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: A name from :func:`list_models`.
        **kwargs: Passed to the builder, e.g. ``num_classes=2``.

    Returns:
        The freshly initialised model.

    Raises:
        ConfigError: If ``name`` is not registered.

    Example:
        >>> model = create_model("yolov5s", num_classes=2, stem="focus")
    """
    return _lookup(name).builder(**kwargs)


def _lookup(name: str) -> _Entry:
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(list_models()) or "none"
        raise ConfigError(name, "unknown model name", f"use one of: {known}")
    return entry


_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelCard:
    """What a set of trained weights is, where it came from and how well it does.

    Attributes:
        name: Registered model name the weights belong to, e.g. ``"yolov5s"``.
        task: The task, e.g. ``"detection"``.
        version: Version of these weights, e.g. ``"1.0.0"``.
        labels: Class names in output order.
        input_size: Network input ``(height, width)`` in pixels.
        preprocessing: How images are prepared, e.g. ``{"letterbox": True, "scale": 255}``.
        thresholds: Operating thresholds, e.g. ``{"confidence": 0.25, "iou": 0.45}``.
        weights_file: Weights file name, relative to the card.
        weights_sha256: Lower-case hex SHA-256 of the weights file.
        training_data: The data sets the weights were trained on.
        data_licence: Licence of that training data.
        metrics: Evaluation results, e.g. ``{"mAP50": 0.41}``.
        notes: Intended use, limitations and anything else a user must know.

    Example:
        >>> card = ModelCard("yolov5s", "detection", "1.0.0", ("nodule",), (640, 640))
        >>> ModelCard.from_dict(card.to_dict()) == card
        True
    """

    name: str
    task: str
    version: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    weights_file: str | None = None
    weights_sha256: str | None = None
    training_data: str = ""
    data_licence: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or any(side <= 0 for side in self.input_size):
            raise ConfigError(
                f"model card {self.name}",
                f"input_size {self.input_size!r} is not a (height, width) pair of positive ints",
                "give it as [height, width], e.g. [640, 640]",
            )
        if self.weights_sha256 is not None and not _SHA256_PATTERN.fullmatch(self.weights_sha256):
            raise ConfigError(
                f"model card {self.name}",
                "weights_sha256 is not 64 lower-case hex digits",
                "compute it with `sha256sum` on the weights file",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Build a card from a dictionary such as :meth:`to_dict` returns.

        Raises:
            ConfigError: If fields are missing, unknown or of the wrong shape.
        """
        subject = f"model card {data.get('name', '(unnamed)')}"
        known = {card_field.name for card_field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                subject, f"unknown fields {', '.join(unknown)}", "remove them or fix their names"
            )
        required = {"name", "task", "version", "labels", "input_size"}
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(subject, f"missing fields {', '.join(missing)}", "add them")
        values = dict(data)
        try:
            values["labels"] = tuple(str(label) for label in data["labels"])
            height, width = (int(side) for side in data["input_size"])
            values["input_size"] = (height, width)
            for mapping_name in ("preprocessing", "thresholds", "metrics"):
                values[mapping_name] = dict(data.get(mapping_name, {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(
                subject, f"a field has the wrong shape ({error})", "fix it"
            ) from error
        return cls(**values)


def save_card(card: ModelCard, path: str | Path) -> None:
    """Write ``card`` as indented JSON to ``path``.

    Example:
        >>> card = ModelCard("yolov5s", "detection", "1.0.0", ("nodule",), (640, 640))
        >>> save_card(card, "yolov5s_nodule.card.json")  # doctest: +SKIP
    """
    Path(path).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_card(path: str | Path) -> ModelCard:
    """Read a model card written by :func:`save_card`.

    Raises:
        InputNotFoundError: If the file does not exist or cannot be read.
        ConfigError: If the file is not valid JSON or not a valid card.
    """
    card_path = Path(path)
    try:
        text = card_path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputNotFoundError(
            str(card_path), "the model card cannot be read", "check the path"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            str(card_path), f"not valid JSON (line {error.lineno})", "fix the file"
        ) from error
    if not isinstance(data, dict):
        raise ConfigError(str(card_path), "the JSON is not an object", "write the card as {...}")
    return ModelCard.from_dict(data)

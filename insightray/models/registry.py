"""A registry of model builders (timm-style), each with its architecture defaults.

Builders are plain functions that return an ``nn.Module``; :func:`register_model` records them
under a name and a task with the defaults a model card does not repeat (input channels, the
layer Grad-CAM hooks), as timm keeps its pretrained configs beside its builders;
:func:`create_model` calls them by name.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from insightray.errors import ConfigError

__all__ = [
    "ModelDefaults",
    "create_model",
    "list_models",
    "model_defaults",
    "model_task",
    "register_model",
]

BuilderT = TypeVar("BuilderT", bound=Callable[..., nn.Module])

DEFAULT_TASK = "general"


@dataclass(frozen=True)
class ModelDefaults:
    """What a registered architecture assumes when its card does not say.

    Attributes:
        task: What the model does, e.g. ``"detection"``.
        in_channels: Image channels the builder takes by default (``None`` for text models).
        cam_layer: Dotted name of the layer Grad-CAM hooks, if the model supports it.
    """

    task: str
    in_channels: int | None = 3
    cam_layer: str | None = None


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    defaults: ModelDefaults


# Filled by the @register_model decorators as model modules are imported (timm-style).
_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    task: str = DEFAULT_TASK,
    in_channels: int | None = 3,
    cam_layer: str | None = None,
) -> Callable[[BuilderT], BuilderT]:
    """Record a builder function under ``name`` so :func:`create_model` can find it.

    Args:
        name: Unique model name, e.g. ``"yolov5s"``.
        task: What the model does, e.g. ``"detection"`` or ``"classification"``.
        in_channels: The builder's default image channels (``None`` for text models).
        cam_layer: The layer Grad-CAM hooks by default, if any.

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
        defaults = ModelDefaults(task, in_channels, cam_layer)
        _REGISTRY[name] = _Entry(builder=builder, defaults=defaults)
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
    return sorted(
        name for name, entry in _REGISTRY.items() if task is None or entry.defaults.task == task
    )


def model_task(name: str) -> str:
    """Return the task a registered model was registered with.

    Raises:
        ConfigError: If ``name`` is not registered.
    """
    return _lookup(name).defaults.task


def model_defaults(name: str) -> ModelDefaults:
    """Return the architecture defaults a registered model was registered with.

    Raises:
        ConfigError: If ``name`` is not registered.

    Example:
        >>> model_defaults("efficientnet_lite0").cam_layer
        '_conv_head'
    """
    return _lookup(name).defaults


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

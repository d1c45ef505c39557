"""What federating one of our models needs, one :class:`FederatedTask` per ``--task``.

The Flower apps, the site's client and ``federated simulate`` are the same for every model;
what differs (how a site reads its data, builds the network, runs its trainer's local epochs,
how the server scores a round, how sites are split and how the model folder is written) is a
:class:`FederatedTask` looked up by name with :func:`get_task`:

- ``fracture``: the fracture classifier (:mod:`.fracture`), server-side AUC.
- ``ner``: the BiLSTM-CRF NER tagger (:mod:`.ner`), server-side entity F1.
- ``detect``: the chest X-ray detector (:mod:`.detect`), server-side mAP@0.5.

Example:
    >>> get_task("ner").metric
    'f1'
"""

from __future__ import annotations

from insightray.errors import ConfigError
from insightray.federated.settings import TASKS
from insightray.federated.tasks.base import FederatedTask, LocalResult

__all__ = ["FederatedTask", "LocalResult", "get_task", "task_names"]


def _registry() -> dict[str, type[FederatedTask]]:
    from insightray.federated.tasks.detect import DetectTask
    from insightray.federated.tasks.fracture import FractureTask
    from insightray.federated.tasks.ner import NerTask

    tasks = (FractureTask, NerTask, DetectTask)
    registry: dict[str, type[FederatedTask]] = {task.name: task for task in tasks}
    assert tuple(registry) == TASKS, "register every task of settings.TASKS"
    return registry


def task_names() -> tuple[str, ...]:
    """The names ``--task`` accepts."""
    return tuple(_registry())


def get_task(name: str) -> FederatedTask:
    """The task called ``name``.

    Raises:
        ConfigError: No such task.
    """
    registry = _registry()
    if name not in registry:
        raise ConfigError("--task", f"{name!r} is not federated", f"use one of {tuple(registry)}")
    return registry[name]()

"""Where trained models are found, and the default model of each task.

Every trained model is a folder holding ``card.json`` (a :class:`~insightray.models.ModelCard`)
and its weights. Models that ship with Insight Ray live in ``insightray/weights/<name>/``.
A ``--model NAME_OR_PATH`` option names a card file, a model folder, an ``.onnx`` export with
its ``<stem>.card.json`` beside it, or a bundled name. :data:`TASKS` is the one table of
tasks: the card's task name, the name the web service gives it, and its default model; the
CLI, the service and its model registry all read it.

Example:
    >>> resolve_card(None, default="no-such-model")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    insightray.errors.InputNotFoundError: no-such-model: no model of this name is bundled yet...
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from insightray.errors import ConfigError, InputNotFoundError

CARD_FILE = "card.json"


@dataclass(frozen=True)
class Task:
    """One task a model card can have.

    Attributes:
        name: The card's ``task``.
        service_name: What the web service and its clients call it.
        default_model: The bundled model used when none is named.
        image: Whether its inputs are images.
    """

    name: str
    service_name: str
    default_model: str
    image: bool = False


#: Every task, in the order the service lists them.
TASKS = (
    Task("detection", "cxr", "cxr-tbx11k-yolov5s", image=True),
    Task("classification", "fracture", "fracture-roboflow-lite0", image=True),
    Task("ner", "ner", "ner-ncbi-bilstm-crf"),
    Task("text-classification", "text-classification", "textcls-symptom2disease-minilm"),
    Task("intent", "assistant", "assistant-intent"),
)


def find_task(name: str) -> Task:
    """The task a card's ``task`` or a service task name means.

    Raises:
        ConfigError: No such task.

    Example:
        >>> find_task("cxr").name, find_task("detection").service_name
        ('detection', 'cxr')
    """
    for task in TASKS:
        if name in (task.name, task.service_name):
            return task
    known = ", ".join(task.name for task in TASKS)
    raise ConfigError(f"task {name!r}", "unknown task", f"use one of: {known}")


def default_model(task: str) -> str:
    """The bundled model a task uses when none is named.

    Example:
        >>> default_model("detection")
        'cxr-tbx11k-yolov5s'
    """
    return find_task(task).default_model


def bundled_models_dir() -> Path:
    """The package folder that holds the bundled models."""
    return Path(__file__).resolve().parents[1] / "weights"


def bundled_models() -> list[str]:
    """Names of the bundled models (folders of ``insightray/weights`` with a card)."""
    return sorted(card.parent.name for card in bundled_models_dir().glob(f"*/{CARD_FILE}"))


def resolve_card(name_or_path: str | Path | None, *, default: str) -> Path:
    """Return the card path that a ``--model`` value names, or the default model's card.

    Args:
        name_or_path: A card ``.json`` file, a folder holding ``card.json``, an ``.onnx``
            export, a bundled model name, or ``None`` for ``default``.
        default: The bundled model used when nothing is named.

    Raises:
        InputNotFoundError: Nothing of that name exists, or the default is not bundled.
    """
    chosen = str(name_or_path) if name_or_path is not None else default
    path = Path(chosen)
    if path.suffix == ".onnx":
        beside = path.with_name(path.stem + ".card.json")
        if not beside.is_file():
            raise InputNotFoundError(
                chosen, f"no model card {beside.name} beside the ONNX file", "export it again"
            )
        return beside
    if path.suffix == ".json" and path.is_file():
        return path
    if path.is_dir() and (path / CARD_FILE).is_file():
        return path / CARD_FILE
    bundled = bundled_models_dir() / chosen / CARD_FILE
    if "/" not in chosen and bundled.is_file():
        return bundled
    if name_or_path is None:
        raise InputNotFoundError(
            default,
            "no model of this name is bundled yet",
            "train one (see `insightray train --help`) or pass --model",
        )
    known = ", ".join(bundled_models()) or "none"
    raise InputNotFoundError(
        chosen,
        "no model card, model folder or bundled model of that name",
        f"pass a card .json, a folder holding card.json, or a bundled name ({known})",
    )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""One inference layer: a model card in, a :class:`Predictor` out, whatever the task.

:func:`load_predictor` resolves ``--model NAME_OR_PATH`` (or a task's default model, from
:data:`insightray.models.catalog.TASKS`), reads the card and builds the predictor its ``task``
names. Predictor factories are found through the ``insightray.predictors`` entry-point group
(declared in ``pyproject.toml``), so a task implemented in a higher layer (the NER tagger in
:mod:`insightray.nlp`, the intent model in :mod:`insightray.assistant`) or in another package
plugs in without the engine importing it. Image predictors run on a backend chosen by name
from :func:`list_backends` (``torch``, ``onnx`` (ONNX Runtime), ``openvino`` and
``openvino-bf16`` (OpenVINO on the CPU in fp32 or bfloat16), and ``auto``, which picks ONNX
Runtime for ONNX weights, else PyTorch; :func:`register_backend` adds more).

Example:
    >>> predictor = load_predictor(task="detection")
    >>> predictor.card.task
    'detection'
    >>> sorted(list_backends())
    ['auto', 'onnx', 'openvino', 'openvino-bf16', 'torch']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload, runtime_checkable

from insightray.engine.backends import Backend, OnnxBackend, OpenVinoBackend, TorchBackend
from insightray.engine.export import EXPORT_RECIPE, export_onnx
from insightray.engine.weights import load_model, verify_checksum
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models import ModelCard, load_card
from insightray.models.catalog import default_model, find_task, resolve_card

if TYPE_CHECKING:  # the image predictors import this module
    from insightray.engine.classification import FracturePredictor
    from insightray.engine.detection import DetectionPredictor

__all__ = [
    "PREDICTOR_ENTRY_POINTS",
    "Predictor",
    "Result",
    "list_backends",
    "load_predictor",
    "open_backend",
    "register_backend",
    "require_torch_cpu",
    "weights_path",
]

#: The entry-point group that maps a card's ``task`` to its predictor factory.
PREDICTOR_ENTRY_POINTS = "insightray.predictors"

BackendFactory = Callable[[ModelCard, Path, str], Backend]
FactoryT = TypeVar("FactoryT", bound=BackendFactory)

_BACKENDS: dict[str, BackendFactory] = {}


@runtime_checkable
class Result(Protocol):
    """One input's answer: every task's result has one JSON form, used by the CLI and API."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """What every task's predictor offers.

    Attributes:
        card: The model card it was built from.
    """

    card: ModelCard

    def predict(self, inputs: Sequence[Any]) -> Sequence[Result]:
        """One result per input (images for image tasks, strings for text tasks)."""
        ...

    def warm_up(self) -> None:
        """Run once on a dummy input so the first real call is not slow."""
        ...


def register_backend(name: str) -> Callable[[FactoryT], FactoryT]:
    """Record a factory ``(card, card_path, device) -> Backend`` under ``name``.

    Example:
        >>> @register_backend("my-runtime")  # doctest: +SKIP
        ... def my_runtime(card, card_path, device):
        ...     return MyBackend(card_path.parent / "model.bin")
    """

    def decorator(factory: FactoryT) -> FactoryT:
        _BACKENDS[name] = factory
        return factory

    return decorator


def list_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_BACKENDS)


def open_backend(name: str, card: ModelCard, card_path: Path, device: str = "cpu") -> Backend:
    """Open the ``name`` backend for a card whose weights lie beside ``card_path``.

    Raises:
        ConfigError: An unknown backend, or a card without weights.
    """
    factory = _BACKENDS.get(name)
    if factory is None:
        raise ConfigError(
            f"backend {name!r}", "unknown backend", f"use one of: {', '.join(list_backends())}"
        )
    return factory(card, card_path, device)


def require_torch_cpu(task: str, backend: str, device: str) -> None:
    """Refuse a backend or device that a PyTorch-on-the-CPU predictor does not run on.

    Raises:
        ConfigError: ``backend`` is not ``torch`` or ``device`` not ``cpu``.
    """
    if backend not in ("auto", "torch") or device != "cpu":
        raise ConfigError(
            f"{backend} on {device}", f"the {task} model runs on torch on the CPU", "use those"
        )


def weights_path(card: ModelCard, card_path: Path) -> Path:
    """The weights file a card names, beside the card.

    Raises:
        ConfigError: The card names no weights file.
    """
    if card.weights_file is None:
        raise ConfigError(str(card_path), "the card names no weights_file", "train or export it")
    return card_path.parent / card.weights_file


@register_backend("auto")
def _auto_backend(card: ModelCard, card_path: Path, device: str) -> Backend:
    """The backend the card names (a bf16 conversion names ``openvino-bf16``), else ONNX
    Runtime for ONNX weights (an export, an INT8 model) and PyTorch for the rest."""
    if card.backend is not None:
        if card.backend == "auto":
            raise ConfigError(str(card_path), "the card's backend is auto", "name a backend")
        return open_backend(card.backend, card, card_path, device)
    onnx = weights_path(card, card_path).suffix == ".onnx"
    return open_backend("onnx" if onnx else "torch", card, card_path, device)


@register_backend("torch")
def _torch_backend(card: ModelCard, card_path: Path, device: str) -> Backend:
    weights = weights_path(card, card_path)
    if weights.suffix == ".onnx":
        raise ConfigError(str(card_path), "these weights are an ONNX export", "use --backend onnx")
    return TorchBackend(load_model(card, weights), device=device)


@register_backend("onnx")
def _onnx_backend(card: ModelCard, card_path: Path, device: str) -> Backend:
    return OnnxBackend(onnx_file(card, card_path), device=device)


@register_backend("openvino")
def _openvino_backend(card: ModelCard, card_path: Path, device: str) -> Backend:
    """The card's ONNX file compiled by OpenVINO for the CPU, in fp32."""
    _require_cpu("openvino", device)
    return OpenVinoBackend(onnx_file(card, card_path), "f32")


@register_backend("openvino-bf16")
def _openvino_bf16_backend(card: ModelCard, card_path: Path, device: str) -> Backend:
    """The card's ONNX file compiled by OpenVINO for the CPU, computing in bfloat16."""
    _require_cpu("openvino-bf16", device)
    return OpenVinoBackend(onnx_file(card, card_path), "bf16")


def _require_cpu(backend: str, device: str) -> None:
    if device != "cpu":
        raise ConfigError(f"{backend} on {device}", "OpenVINO runs here on the CPU only",
                          "use --device cpu, or --backend onnx on a GPU")  # fmt: skip


def onnx_file(card: ModelCard, card_path: Path) -> Path:
    """The card's ONNX graph: its weights when they are one, else an export beside them.

    The export is ``<weights stem>.onnx`` with a ``.onnx.sha256`` stamp holding the SHA-256 of
    the weights it came from, its input size and the export recipe; it is exported again when
    any of them changes.

    Raises:
        InputNotFoundError: The card's ONNX weights are missing.
        ConfigError: The export cannot be written beside the weights.
    """
    weights = weights_path(card, card_path)
    if weights.suffix == ".onnx":
        if not weights.is_file():
            raise InputNotFoundError(str(weights), "the ONNX model does not exist", "export it")
        verify_checksum(card, weights)
        return weights
    target = weights.with_suffix(".onnx")
    stamp = target.with_name(target.name + ".sha256")
    size = f"{card.input_size[0]}x{card.input_size[1]}"
    expected = f"{card.weights_sha256} {size} {EXPORT_RECIPE}"
    if not (target.is_file() and stamp.is_file() and stamp.read_text().strip() == expected):
        model = load_model(card, weights)
        try:
            export_onnx(model, target, card.input_size)
            stamp.write_text(expected + "\n", encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                str(target),
                f"the ONNX export cannot be written beside the weights ({type(error).__name__})",
                "copy the model folder somewhere writable, or use `insightray export detect`",
            ) from error
    return target


@overload
def load_predictor(
    model: str | Path | None = None,
    *,
    task: Literal["detection"],
    backend: str = "auto",
    device: str = "cpu",
    **options: Any,
) -> DetectionPredictor: ...


@overload
def load_predictor(
    model: str | Path | None = None,
    *,
    task: Literal["classification"],
    backend: str = "auto",
    device: str = "cpu",
    **options: Any,
) -> FracturePredictor: ...


@overload
def load_predictor(
    model: str | Path | None = None,
    *,
    task: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    **options: Any,
) -> Predictor: ...


def load_predictor(
    model: str | Path | None = None,
    *,
    task: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    **options: Any,
) -> Predictor:
    """Build the predictor for a model card, a model folder, an export or a bundled name.

    Args:
        model: What ``--model`` names (see :func:`~insightray.models.catalog.resolve_card`);
            ``None`` takes the default model of ``task``.
        task: The task the model must have (a card task or a service task name); required
            when ``model`` is ``None``.
        backend: Image tasks: a name from :func:`list_backends`; ``auto`` runs ONNX weights
            on ONNX Runtime and the rest on PyTorch.
        device: ``"cpu"`` or a CUDA device.
        **options: Passed to the task's predictor (e.g. ``conf_threshold`` for detection).

    Raises:
        ConfigError: No task given with no model, the card is of another task, or no
            predictor is installed for its task.
        InputNotFoundError: Nothing of that name exists.
        CorruptFileError: The weights' SHA-256 differs from the card's.
    """
    wanted = None if task is None else find_task(task)
    if model is None and wanted is None:
        raise ConfigError("load_predictor", "neither a model nor a task", "name one of them")
    default = default_model(wanted.name) if wanted is not None else ""
    card_path = resolve_card(model, default=default)
    card = load_card(card_path)
    if wanted is not None and find_task(card.task) != wanted:
        raise ConfigError(
            str(card_path),
            f"this is a {card.task} model, not a {wanted.name} model",
            f"pass a {wanted.name} model",
        )
    factory = _predictor_factory(card.task, card_path)
    predictor: Predictor = factory(card, card_path, backend=backend, device=device, **options)
    return predictor


def _predictor_factory(task: str, card_path: Path) -> Callable[..., Predictor]:
    found = entry_points(group=PREDICTOR_ENTRY_POINTS, name=task)
    if not found:
        installed = sorted(point.name for point in entry_points(group=PREDICTOR_ENTRY_POINTS))
        raise ConfigError(
            str(card_path),
            f"no predictor is installed for task {task!r}",
            f"install the package that provides it (installed: {', '.join(installed) or 'none'})",
        )
    factory: Callable[..., Predictor] = next(iter(found)).load()
    return factory

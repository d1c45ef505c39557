"""Small, checksummed weight files: write a model folder, build a model back from its card.

Weights are stored in half precision (about half the size of float32) and loaded back as
float32. The format is `safetensors <https://github.com/huggingface/safetensors>`_ when that
package is installed, otherwise a ``torch.save`` archive of the state dict; :func:`load_weights`
reads either, recognising the format from the file's bytes, and always loads tensors only
(``weights_only=True``), never pickled code.

How a card names its architecture: ``card.name`` is the registry name of the builder (e.g.
``"yolov5n"``), ``len(card.labels)`` is the number of classes, ``card.preprocessing.channels``
the image channels (else the builder's registered default), and
``card.preprocessing.model_kwargs`` any further builder arguments (e.g. ``{"stem": "focus"}``).
Anchors learnt by autoanchor travel in the weights.

Example:
    >>> from insightray.models import ModelCard, Preprocessing, create_model
    >>> model = create_model("yolov5n", num_classes=1, in_channels=1)
    >>> card = ModelCard("yolov5n", "detection", "1.0.0", ("nodule",), (640, 640),
    ...                  preprocessing=Preprocessing(channels=1))
    >>> card = write_model("runs/nodule", model, card)  # doctest: +SKIP
    >>> model = load_model(card, "runs/nodule/weights.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from insightray.errors import ConfigError, CorruptFileError, InputNotFoundError
from insightray.models import (
    Lineage,
    ModelCard,
    create_model,
    load_card,
    model_defaults,
    save_card,
)
from insightray.models.catalog import CARD_FILE, default_model, resolve_card, sha256_file

__all__ = [
    "input_channels",
    "load_model",
    "load_torch_model",
    "load_weights",
    "safetensors_available",
    "save_copy_card",
    "save_weights",
    "torch_model_card",
    "verify_checksum",
    "weights_suffix",
    "write_model",
]

#: The weights file's name in a model folder, before :func:`weights_suffix`.
WEIGHTS_STEM = "weights"
#: Buffers kept in float32: anchor sizes and strides lose precision in half.
_FLOAT32_SUFFIXES = ("anchors", "stride")
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20


def safetensors_available() -> bool:
    """Whether the optional ``safetensors`` package is installed."""
    return importlib.util.find_spec("safetensors") is not None


def weights_suffix() -> str:
    """The file suffix :func:`save_weights` writes: ``.safetensors`` or ``.pt``."""
    return ".safetensors" if safetensors_available() else ".pt"


def save_weights(model: nn.Module, path: str | Path) -> str:
    """Write the model's state dict in half precision and return the file's SHA-256.

    Floating tensors become float16, except anchor and stride buffers and any tensor whose
    values do not fit float16; they stay float32. Integer tensors are kept as they are.

    Example:
        >>> from insightray.models import create_model
        >>> digest = save_weights(create_model("yolov5n", num_classes=2), "w.pt")  # doctest: +SKIP
    """
    state = {name: _to_storage(name, tensor) for name, tensor in model.state_dict().items()}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_state(state, target)
    return sha256_file(target)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a file written by :func:`save_weights`; floating tensors come back as float32.

    Raises:
        InputNotFoundError: The file does not exist.
        CorruptFileError: The file is not a readable weights file.
    """
    source = Path(path)
    if not source.is_file():
        raise InputNotFoundError(str(source), "the weights file does not exist", "check the path")
    state = _read_state(source)
    return {name: t.float() if t.is_floating_point() else t for name, t in state.items()}


def load_model(card: ModelCard, weights_path: str | Path, verify: bool = True) -> nn.Module:
    """Build the card's model from the registry and load its weights, checked by SHA-256.

    Args:
        card: The model card; see the module docstring for the fields that describe the model.
        weights_path: The weights file, usually ``card.weights_file`` next to the card.
        verify: Check the file's SHA-256 against ``card.weights_sha256`` (required there).

    Returns:
        The model in eval mode, float32, on the CPU, not fused.

    Raises:
        ConfigError: The card has no checksum, or the weights do not fit the architecture.
        CorruptFileError: The checksum differs from the card's, or the file cannot be read.

    Example:
        >>> model = load_model(load_card("chest.card.json"), "chest.pt")  # doctest: +SKIP
    """
    path = Path(weights_path)
    if not path.is_file():
        raise InputNotFoundError(str(path), "the weights file does not exist", "check the path")
    if verify:
        verify_checksum(card, path)
    kwargs: dict[str, Any] = dict(card.preprocessing.model_kwargs)
    channels = input_channels(card)
    if channels is not None:
        kwargs.setdefault("in_channels", channels)
    model = create_model(card.name, num_classes=len(card.labels), **kwargs)
    state = load_weights(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ConfigError(
            str(path),
            f"the weights do not fit {card.name} with {len(card.labels)} classes ({first_line})",
            "check the card's name, labels, channels and model_kwargs",
        ) from error
    return model.eval()


def load_torch_model(
    model: str | Path | None, task: str = "detection"
) -> tuple[Path, ModelCard, nn.Module]:
    """The card path, card and network of the PyTorch model a ``--model`` value names: the
    parent of an optimised copy (INT8, bf16, pruned).

    Args:
        model: A card, a model folder or a bundled name (``None``: the task's default).
        task: ``detection`` or ``classification``.

    Raises:
        ConfigError: It is not a trained model of ``task``, an ONNX export or an ensemble.
        InputNotFoundError: Nothing of that name exists.
    """
    card_path, card = torch_model_card(model, task)
    return card_path, card, load_model(card, card_path.parent / (card.weights_file or ""))


def torch_model_card(model: str | Path | None, task: str = "detection") -> tuple[Path, ModelCard]:
    """:func:`load_torch_model`'s card path and card, checked alike, without the network."""
    card_path = resolve_card(model, default=default_model(task))
    card = load_card(card_path)
    noun = "detector" if task == "detection" else "classifier"
    if card.task != task or card.weights_file is None:
        raise ConfigError(str(card_path), f"not a trained {noun}", f"pass a {task} model")
    if card.weights_file.endswith(".onnx"):
        raise ConfigError(str(card_path), "it is an ONNX export already", "pass the PyTorch model")
    if card.ensemble is not None or card.weights_file.endswith(".json"):
        raise ConfigError(str(card_path), "an ensemble has no single network",
                          "optimise each member model")  # fmt: skip
    return card_path, card


def input_channels(card: ModelCard) -> int | None:
    """The image channels the card's model takes: the card's, else its builder's default.

    ``None`` for models that take no images (text models).
    """
    return card.preprocessing.channels or model_defaults(card.name).in_channels


def write_model(folder: str | Path, model: nn.Module, card: ModelCard) -> ModelCard:
    """Write a model folder: the weights, and ``card.json`` naming them with their SHA-256.

    The detector, fracture and BiLSTM-CRF trainers save their results through this function,
    so their model folders share one layout and the card always matches its weights.

    Returns:
        The card as written, with ``weights_file`` and ``weights_sha256`` filled in.

    Example:
        >>> card = write_model("runs/chest/model", model, card)  # doctest: +SKIP
        >>> card.weights_file  # doctest: +SKIP
        'weights.safetensors'
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    weights_path = target / (WEIGHTS_STEM + weights_suffix())
    digest = save_weights(model, weights_path)
    written = dataclasses.replace(card, weights_file=weights_path.name, weights_sha256=digest)
    save_card(written, target / CARD_FILE)
    return written


def verify_checksum(card: ModelCard, path: str | Path) -> None:
    """Check a file's SHA-256 against ``card.weights_sha256``.

    Raises:
        ConfigError: The card has no checksum.
        CorruptFileError: The file's checksum differs from the card's.
    """
    if card.weights_sha256 is None:
        raise ConfigError(
            f"model card {card.name}",
            "weights_sha256 is missing, so the weights cannot be checked",
            "add the file's SHA-256 to the card (sha256sum) or pass verify=False",
        )
    actual = sha256_file(path)
    if actual != card.weights_sha256:
        raise CorruptFileError(
            str(path),
            f"SHA-256 {actual[:12]}... differs from the model card's "
            f"{card.weights_sha256[:12]}..., so the file is damaged or not these weights",
            "download or copy the weights again, or use the card that came with them",
        )


def _to_storage(name: str, tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().cpu().contiguous()
    if not tensor.is_floating_point() or name.endswith(_FLOAT32_SUFFIXES):
        return tensor.float() if tensor.is_floating_point() else tensor
    half = tensor.half()
    fits = bool(torch.equal(torch.isfinite(half), torch.isfinite(tensor)))
    return half if fits else tensor.float()


def _write_state(state: Mapping[str, torch.Tensor], path: Path) -> None:
    if safetensors_available():
        from safetensors.torch import save_file

        save_file(dict(state), str(path))
    else:
        torch.save(dict(state), path)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    with path.open("rb") as handle:
        head = handle.read(4)
    try:
        if head == _ZIP_MAGIC:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        elif safetensors_available():
            from safetensors.torch import load_file

            loaded = load_file(str(path), device="cpu")
        else:
            raise CorruptFileError(
                str(path),
                "this is not a torch weights archive, and safetensors is not installed",
                "install safetensors or save the weights again",
            )
    except CorruptFileError:
        raise
    except Exception as error:  # torch and safetensors raise many untyped errors on bad files
        raise CorruptFileError(
            str(path), f"the weights cannot be read ({type(error).__name__})", "save them again"
        ) from error
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise CorruptFileError(str(path), "the file holds no state dict", "save the weights again")
    return loaded


def save_copy_card(
    parent: ModelCard,
    lineage: Lineage,
    weights: Path,
    card_path: Path,
    tag: str,
    kind: str,
    **changes: Any,
) -> ModelCard:
    """Save and return the card of an optimised copy (INT8, bf16): the parent's, with
    ``+tag`` in its version, the new weights and their SHA-256, ``lineage``, no metrics yet
    and ``changes``.

    Example:
        >>> save_copy_card(parent, lineage, out / "weights.onnx", out / "card.json",
        ...                "int8", "INT8")  # doctest: +SKIP
    """
    card = dataclasses.replace(
        parent,
        version=f"{parent.version}+{tag}",
        weights_file=weights.name,
        weights_sha256=sha256_file(weights),
        lineage=lineage,
        metrics={},
        notes=f"{kind} copy of {lineage.parent}; evaluate it before use. {parent.notes}",
        **changes,
    )
    save_card(card, card_path)
    return card

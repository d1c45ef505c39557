"""A fine-tuned retrieval encoder: a model folder stored as int8 deltas, rebuilt on first use.

``insightray train retriever`` fine-tunes the packaged all-MiniLM-L6-v2 on MedQuAD
question-answer pairs and writes a folder with ``card.json`` (task ``sentence-embedding``)
and ``retriever.safetensors``: only what changed against the packaged encoder, as row-wise
int8 deltas (:mod:`insightray.models.text.bert_weights`, the text classifier's storage), a
few MB instead of 90. :func:`materialise_retriever` rebuilds a complete sentence-transformers
folder from it (the packaged folder's tokenizer and pooling files beside the rebuilt
``model.safetensors``) in a cache named after the delta's SHA-256, so every backend of
:class:`~insightray.assistant.embeddings.Embedder` (PyTorch, ONNX fp32 and INT8) reads it as
it reads the packaged model, and the rebuilt weights' SHA-256 names the encoder in the index
fingerprint.

Example:
    >>> is_retriever_folder(default_model_path())  # doctest: +SKIP
    False
    >>> materialise_retriever(Path("runs/retriever"), Path("/tmp/encoders"))  # doctest: +SKIP
    PosixPath('/tmp/encoders/retriever-3f2a.../')
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.card import ModelCard, load_card, save_card
from insightray.models.catalog import CARD_FILE, sha256_file

if TYPE_CHECKING:
    import torch

__all__ = [
    "RETRIEVER_TASK",
    "WEIGHTS_FILE",
    "is_retriever_folder",
    "materialise_retriever",
    "save_retriever",
]

RETRIEVER_TASK = "sentence-embedding"
WEIGHTS_FILE = "retriever.safetensors"
_BASE_WEIGHTS = "model.safetensors"


def is_retriever_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_retriever` (a card, no config.json)."""
    return (path / CARD_FILE).is_file() and not (path / "config.json").is_file()


def _base_state(base_folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(base_folder / _BASE_WEIGHTS))


def save_retriever(
    state: Mapping[str, torch.Tensor], folder: Path, card: ModelCard, base_folder: Path
) -> ModelCard:
    """Write the fine-tuned encoder's ``state`` as int8 deltas against ``base_folder``.

    Args:
        state: The fine-tuned transformer's ``state_dict()`` (keys as in the base's
            ``model.safetensors``).
        folder: Output folder (created).
        card: Its card; the weights file, its SHA-256, the storage and the base encoder's
            SHA-256 are filled in here.
        base_folder: The sentence-transformers folder it was fine-tuned from.

    Returns:
        The card as written.
    """
    from safetensors.torch import save

    from insightray.models.text.bert_weights import encode_weights

    folder.mkdir(parents=True, exist_ok=True)
    stored = encode_weights(state, _base_state(base_folder), "int8")
    target = folder / WEIGHTS_FILE
    target.write_bytes(save(stored, metadata={"format": "insightray-retriever-1"}))
    extra = {
        **card.preprocessing.extra,
        "storage": "delta-int8",
        "encoder_sha256": sha256_file(base_folder / _BASE_WEIGHTS),
    }
    final = dataclasses.replace(
        card,
        task=RETRIEVER_TASK,
        weights_file=WEIGHTS_FILE,
        weights_sha256=sha256_file(target),
        preprocessing=dataclasses.replace(card.preprocessing, extra=extra),
    )
    save_card(final, folder / CARD_FILE)
    return final


def materialise_retriever(folder: Path, cache_dir: Path, base_folder: Path) -> Path:
    """The complete sentence-transformers folder of the retriever in ``folder``, rebuilt once.

    Args:
        folder: A folder written by :func:`save_retriever`.
        cache_dir: Where rebuilt folders are kept (``retriever-<sha16>``).
        base_folder: The packaged encoder the deltas apply to.

    Raises:
        InputNotFoundError: The card or the weights file is missing.
        ConfigError: Not a retriever card, or the weights or base encoder differ from the card.
    """
    from safetensors.torch import save_file

    from insightray.models.text.bert_weights import decode_weights, read_weights

    card = load_card(folder / CARD_FILE)
    if card.task != RETRIEVER_TASK or not card.weights_file or not card.weights_sha256:
        raise ConfigError(
            str(folder), f"not a {RETRIEVER_TASK} model card", "give a `train retriever` folder"
        )
    target = cache_dir / f"retriever-{card.weights_sha256[:16]}"
    if (target / _BASE_WEIGHTS).is_file():
        return target
    weights = folder / card.weights_file
    if not weights.is_file():
        raise InputNotFoundError(str(weights), "the weights file is missing", "re-install it")
    if sha256_file(weights) != card.weights_sha256:
        raise ConfigError(str(weights), "SHA-256 does not match the card", "re-install it")
    expected = card.preprocessing.extra.get("encoder_sha256")
    if expected and sha256_file(base_folder / _BASE_WEIGHTS) != expected:
        raise ConfigError(
            str(base_folder), "the base encoder differs from the one trained on", "reinstall it"
        )
    state = decode_weights(read_weights(weights), _base_state(base_folder))
    staging = cache_dir / f".{target.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(base_folder, staging, ignore=shutil.ignore_patterns(_BASE_WEIGHTS, "*.md"))
    save_file({k: v.contiguous() for k, v in state.items()}, staging / _BASE_WEIGHTS,
              metadata={"format": "pt"})  # fmt: skip
    try:
        staging.rename(target)
    except OSError:  # another process rebuilt it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target

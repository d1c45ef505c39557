"""Dynamic INT8 of the BiLSTM-CRF tagger: its LSTM and linear layers with int8 weights.

PyTorch's dynamic quantisation (``torch.ao.quantization.quantize_dynamic``) replaces the
BiLSTM and the two linear layers (WordPiece projection, emissions) by modules with int8
weights (one scale per tensor) that quantise their activations on the fly, batch by batch, so
no calibration data is needed. The embeddings, the character CNN and the CRF stay in float.
ONNX Runtime's ``quantize_dynamic`` was not used: the tagger does not export to ONNX (packed
variable-length sequences and the CRF's Viterbi decoding in Python).

An INT8 tagger is a model folder like its parent (``card.json``, ``weights.safetensors``,
``vocab.json``); the weights file holds each quantised weight as ``<name>.int8`` with its
``<name>.scale`` and ``<name>.zero_point``, the rest as the parent stored them, and the card says
``preprocessing.quantization: torch-dynamic-int8`` so
:func:`~insightray.engine.ner.load_ner_model` rebuilds exactly those int8 modules.

Example:
    >>> card = quantize_ner(None, "runs/ner-int8")  # doctest: +SKIP
    >>> predict_tags(load_ner_model("runs/ner-int8"), [["Type", "2", "diabetes"]])  # doctest: +SKIP
    [['B-Disease', 'I-Disease', 'I-Disease']]
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from insightray.engine.weights import save_copy_card
from insightray.errors import ConfigError, CorruptFileError
from insightray.models import Lineage, ModelCard, load_card
from insightray.models.catalog import CARD_FILE, default_model, resolve_card

__all__ = ["QUANTIZATION", "dequantizable", "quantize_ner", "restore_int8"]

#: The card's ``preprocessing.quantization`` value of a tagger written by :func:`quantize_ner`.
QUANTIZATION = "torch-dynamic-int8"
_QUANTISED_TYPES: set[type[nn.Module]] = {nn.LSTM, nn.Linear}
_INT8, _SCALE, _ZERO = ".int8", ".scale", ".zero_point"


def _dynamic(model: nn.Module) -> nn.Module:
    """``model`` with dynamic int8 LSTM and linear layers (a new module; ``model`` unchanged)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which has no int8 LSTM.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantised: nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, _QUANTISED_TYPES, dtype=torch.qint8
        )
    return quantised


def _int8_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(state-dict name, quantised tensor)`` of every int8 weight of a quantised model."""
    for prefix, module in model.named_modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            yield f"{prefix}.weight", module.weight()  # type: ignore[no-untyped-call]
        elif isinstance(module, torch.ao.nn.quantized.dynamic.LSTM):
            weights = module._weight_bias()["weight"]  # type: ignore[no-untyped-call]
            for name, tensor in weights.items():
                yield f"{prefix}.{name}", tensor


def dequantizable(float_model: nn.Module, quantised: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of the INT8 weights file: the float model's state without the quantised
    weights, plus each quantised weight as int8 values, scale and zero point."""
    state = {name: _compact(value) for name, value in float_model.state_dict().items()}
    for name, tensor in _int8_weights(quantised):
        del state[name]
        state[name + _INT8] = tensor.int_repr()
        state[name + _SCALE] = torch.tensor([tensor.q_scale()], dtype=torch.float64)
        state[name + _ZERO] = torch.tensor([tensor.q_zero_point()], dtype=torch.int64)
    return state


def _compact(value: torch.Tensor) -> torch.Tensor:
    """float16 when that loses nothing (weights saved in float16 and loaded), else float32."""
    if not value.is_floating_point():
        return value
    half = value.half()
    return half if torch.equal(half.float(), value.float()) else value.float()


def restore_int8(model: nn.Module, weights_path: Path) -> nn.Module:
    """The INT8 model of a weights file written from :func:`dequantizable`.

    The file is read as it is (scales in float64), so the int8 modules are the ones
    :func:`quantize_ner` made, bit for bit.

    Args:
        model: A float model of the card's architecture (its weights are replaced).
        weights_path: The ``.safetensors`` file (its SHA-256 checked by the caller).

    Raises:
        ConfigError: The file does not fit the model.
        CorruptFileError: The file cannot be read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors: Mapping[str, torch.Tensor] = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise CorruptFileError(
            str(weights_path), "not a safetensors file", "quantise again"
        ) from error
    floats = {k: v for k, v in tensors.items() if not k.endswith((_INT8, _SCALE, _ZERO))}
    missing, unexpected = model.load_state_dict(floats, strict=False)
    int8_names = {k[: -len(_INT8)] for k in tensors if k.endswith(_INT8)}
    quantised = _dynamic(model)
    expected = {name for name, _ in _int8_weights(quantised)}
    if unexpected or set(missing) != int8_names or int8_names != expected:
        raise ConfigError("INT8 weights", "they do not fit the card's model", "quantise it again")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantised tensors are deprecated in torch
        values = {
            name: torch.quantize_per_tensor(
                (tensors[name + _INT8].float() - tensors[name + _ZERO].item())
                * tensors[name + _SCALE].item(),
                tensors[name + _SCALE].item(),
                int(tensors[name + _ZERO].item()),
                torch.qint8,
            )
            for name in int8_names
        }
        for prefix, module in quantised.named_modules():
            if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
                bias = module.bias()  # type: ignore[no-untyped-call]
                module.set_weight_bias(values[f"{prefix}.weight"], bias)
            elif isinstance(module, torch.ao.nn.quantized.dynamic.LSTM):
                current = module._weight_bias()  # type: ignore[no-untyped-call]
                weights = {k: values[f"{prefix}.{k}"] for k in current["weight"]}
                module.set_weight_bias(weights | current["bias"])  # type: ignore[no-untyped-call]
    return quantised.eval()


def quantize_ner(model: str | Path | None, out_dir: str | Path) -> ModelCard:
    """Write a dynamic-INT8 copy of a BiLSTM-CRF tagger as a new model folder.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        out_dir: The new model folder.

    Raises:
        ConfigError: Not a BiLSTM-CRF tagger, or one quantised already.
    """
    from safetensors.torch import save_file

    from insightray.engine.ner import MODEL_NAME, VOCAB_FILE, WEIGHTS_FILE, load_ner_model

    card_path = resolve_card(model, default=default_model("ner"))
    parent = load_card(card_path)
    if parent.name != MODEL_NAME:
        raise ConfigError(str(card_path), f"not a {MODEL_NAME} tagger", "pass a BiLSTM-CRF model")
    if parent.preprocessing.extra.get("quantization"):
        raise ConfigError(str(card_path), "it is quantised already", "pass its float parent")
    loaded = load_ner_model(card_path)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    tensors = dequantizable(loaded.model, _dynamic(loaded.model))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target / WEIGHTS_FILE))
    vocab = str(parent.preprocessing.extra.get("vocab", VOCAB_FILE))
    shutil.copyfile(card_path.with_name(vocab), target / vocab)
    extra: dict[str, Any] = parent.preprocessing.extra | {"quantization": QUANTIZATION}
    lineage = Lineage(
        "quantised",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        {
            "scheme": "PyTorch dynamic quantisation: int8 weights per tensor, activations "
            "quantised per batch at run time",
            "quantised": "LSTM, Linear",
            "float": "embeddings, character CNN, CRF",
        },
        "none (dynamic quantisation needs no calibration data)",
    )
    preprocessing = dataclasses.replace(parent.preprocessing, extra=extra)
    return save_copy_card(parent, lineage, target / WEIGHTS_FILE, target / CARD_FILE, "int8",
                          "INT8", preprocessing=preprocessing)  # fmt: skip

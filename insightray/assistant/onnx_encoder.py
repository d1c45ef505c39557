"""The sentence encoder on ONNX Runtime: exported once from the packaged model, then fused and
(optionally) quantised to INT8, for building the knowledge index in minutes on a CPU.

The export is the same network as the PyTorch encoder (eager attention, so that onnxruntime's
BERT fusions can recognise it: one ``Attention`` node per layer, ``SkipLayerNormalization``,
``BiasGelu``); INT8 is onnxruntime's dynamic quantisation of the linear layers' weights (per
channel, activations quantised at run time), which keeps the vectors within a cosine of about
0.99 of fp32. Exports are kept in ``folder`` under the weights' SHA-256, so another model or
changed weights never reuse a stale export. ``benchmarks/bench_index_encoder.py`` measures speed
and retrieval against the PyTorch encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.models.text.bert_onnx import bert_session, export_bert, quantize_int8

__all__ = ["ENCODER_RECIPE", "export_encoder", "onnx_encoder"]

#: Names how :func:`export_encoder` makes its files (opset, fusions, quantisation). Bump it when
#: that changes, so files made by an older recipe are not reused.
ENCODER_RECIPE = "fused-1"


def export_encoder(model_path: Path, folder: Path, sha256: str, *, int8: bool) -> Path:
    """The fused (and with ``int8`` quantised) ONNX file of the model, exported if missing.

    Args:
        model_path: A BERT-family sentence-transformers model folder.
        folder: Where exports are kept.
        sha256: The weights' SHA-256 (names the export, with :data:`ENCODER_RECIPE`).
        int8: Quantise the linear layers' weights to INT8.
    """
    stem = f"{sha256[:16]}-{ENCODER_RECIPE}"
    target = folder / f"{stem}-{'int8' if int8 else 'fp32'}.onnx"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fused = folder / f"{stem}-fp32.onnx"
    if not fused.is_file():
        _export_fused(model_path, fused)
    if int8:
        quantize_int8(fused, target)
    return target


def _export_fused(model_path: Path, target: Path) -> None:
    from transformers import AutoModel

    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    model: Any = AutoModel.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager"
    ).eval()
    axes = {0: "batch", 1: "tokens"}
    export_bert(model, config, target, "hidden", axes, lambda out: out.last_hidden_state)


def onnx_encoder(
    onnx_path: Path, tokenizer: Any, max_length: int, threads: int | None
) -> Callable[[list[str]], NDArray[np.float32]]:
    """A batch encoder on ``onnx_path``: mean pooling over the attention mask, then L2
    normalisation, as the sentence-transformers recipe; ``threads`` default to all cores."""
    session = bert_session(onnx_path, threads)
    names = {item.name for item in session.get_inputs()}

    def encode(batch: list[str]) -> NDArray[np.float32]:
        inputs = tokenizer(
            batch, padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
        feed = {name: np.asarray(inputs[name], dtype=np.int64) for name in names}
        hidden = session.run(None, feed)[0]
        mask = np.asarray(inputs["attention_mask"], dtype=np.float32)[..., None]
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)

    return encode

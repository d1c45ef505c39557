"""BERT-family networks on ONNX Runtime: export, BERT fusions, dynamic INT8, sessions.

Shared by the knowledge index's sentence encoder (:mod:`insightray.assistant.onnx_encoder`)
and the INT8 text classifier (:mod:`insightray.engine.textcls_int8`). The export runs the
network with eager attention, so that onnxruntime's BERT optimiser recognises each layer (one
``Attention`` node per layer, ``SkipLayerNormalization``, ``BiasGelu``); INT8 is onnxruntime's
dynamic quantisation: the linear layers' weights in int8 per output channel, activations
quantised at run time, so no calibration data is needed.

Example:
    >>> export_bert(network, config, Path("model.onnx"), "logits", {0: "batch"})  # doctest: +SKIP
    >>> quantize_int8(Path("model.onnx"), Path("model-int8.onnx"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["INPUTS", "bert_session", "export_bert", "quantize_int8", "quiet"]

#: The graph's inputs, as a BERT tokenizer names them (all int64, ``(batch, tokens)``).
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_bert(
    network: Any,
    config: Mapping[str, Any],
    target: Path,
    output: str,
    output_axes: Mapping[int, str],
    select: Callable[[Any], Any] | None = None,
) -> None:
    """Export ``network`` (called with the three :data:`INPUTS` as keywords) to ``target``
    with onnxruntime's BERT fusions; written atomically.

    Args:
        network: A ``torch.nn.Module`` in eval mode whose encoder uses eager attention.
        config: The encoder's Hugging Face config (``num_attention_heads``, ``hidden_size``).
        target: The ``.onnx`` file.
        output: The name of the graph's single output.
        output_axes: Its dynamic axes, e.g. ``{0: "batch"}``.
        select: Picks that output from what ``network`` returns (default: all of it).
    """
    import torch
    from onnxruntime.transformers import optimizer

    class ByName(torch.nn.Module):  # keyword arguments: positional orders differ by version
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            result = self.network(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return result if select is None else select(result)

    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in INPUTS)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    axes[output] = dict(output_axes)
    raw = target.with_suffix(f".{os.getpid()}.raw")
    with quiet(), torch.inference_mode():
        torch.onnx.export(
            ByName(), example, str(raw), input_names=list(INPUTS), output_names=[output],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip
        fused = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config["num_attention_heads"]),
            hidden_size=int(config["hidden_size"]),
        )
    partial = target.with_suffix(f".{os.getpid()}.part")
    fused.save_model_to_file(str(partial))
    raw.unlink()
    partial.replace(target)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic INT8 of ``source``'s linear layers (per-channel int8 weights) into ``target``,
    written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(f".{os.getpid()}.part")
    with quiet():  # it logs a hint to pre-process that does not apply to dynamic INT8
        quantize_dynamic(
            source,
            partial,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # the fused operators are from onnxruntime's domain, which shape inference does
            # not know; their outputs are float
            extra_options={"DefaultTensorType": 1},
        )
    partial.replace(target)


def bert_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on ``path``; ``threads`` default to all cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@contextmanager
def quiet() -> Iterator[None]:
    """Silences the exporter's and quantiser's warnings and root-logger hints meanwhile."""
    level = logging.root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.root.setLevel(level)

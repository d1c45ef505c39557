"""INT8 of a BERT-family text classifier (the MiniLM disease classifier) on ONNX Runtime.

The whole classifier, encoder and head, is exported to ONNX with onnxruntime's BERT fusions
and its linear layers quantised dynamically (:mod:`insightray.models.text.bert_onnx`: int8
weights per output channel, activations quantised per batch at run time, so no calibration
data). ONNX Runtime rather than PyTorch's dynamic quantisation: its fused attention and int8
matrix products (VNNI where the processor has it) are the fast path for transformers on a CPU,
and PyTorch's ``torch.ao.quantization`` is deprecated.

The new model folder holds ``classifier-int8.onnx`` and a card whose
``preprocessing.quantization`` is :data:`~insightray.models.text.bert_classifier.ONNX_INT8`;
:func:`~insightray.models.text.bert_classifier.load_classifier` runs it with the parent's
tokenizer (the packaged encoder's plus the card's added tokens), so ``nlp analyze --model``,
``evaluate textcls --model`` and the service take it as they take the parent. Word attributions
need the PyTorch model: explain with the parent.

Example:
    >>> card = quantize_text_classifier(None, "runs/textcls-int8")  # doctest: +SKIP
    >>> DiseaseClassifier.load("runs/textcls-int8").rank("itchy red scaly patches", top_k=1)
    ...  # doctest: +SKIP
    [('Psoriasis', 0.96)]
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from insightray.engine.weights import save_copy_card
from insightray.errors import ConfigError
from insightray.models import Lineage, ModelCard
from insightray.models.catalog import CARD_FILE, default_model, resolve_card
from insightray.models.text.bert_classifier import (
    ONNX_INT8,
    ONNX_INT8_FILE,
    TASK,
    load_classifier,
)
from insightray.models.text.bert_onnx import export_bert, quantize_int8

__all__ = ["quantize_text_classifier"]


def quantize_text_classifier(model: str | Path | None, out_dir: str | Path) -> ModelCard:
    """Write an ONNX Runtime dynamic-INT8 copy of a text classifier as a new model folder.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        out_dir: The new model folder.

    Raises:
        ConfigError: Not a text classifier, or one quantised already.
    """
    card_path = resolve_card(model, default=default_model(TASK))
    loaded = load_classifier(card_path)
    parent = loaded.card
    if loaded.model is None:
        raise ConfigError(str(card_path), "it is quantised already", "pass its float parent")
    network = loaded.model.eval()
    network.encoder.set_attn_implementation("eager")  # so onnxruntime's fusions recognise it
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        fp32 = Path(scratch) / "classifier-fp32.onnx"
        export_bert(network, network.encoder.config.to_dict(), fp32, "logits", {0: "batch"})
        quantize_int8(fp32, target / ONNX_INT8_FILE)
    lineage = Lineage(
        "quantised",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        {
            "scheme": "ONNX Runtime dynamic quantisation: int8 weights per output channel, "
            "activations quantised per batch at run time; BERT fusions",
            "quantised": "every MatMul/linear layer of the encoder and the head",
            "float": "embeddings, layer norms, softmax",
        },
        "none (dynamic quantisation needs no calibration data)",
    )
    extra = parent.preprocessing.extra | {"quantization": ONNX_INT8, "storage": "onnx"}
    preprocessing = dataclasses.replace(parent.preprocessing, extra=extra)
    return save_copy_card(parent, lineage, target / ONNX_INT8_FILE, target / CARD_FILE, "int8",
                          "INT8", preprocessing=preprocessing)  # fmt: skip

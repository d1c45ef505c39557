"""A bfloat16 copy of a detector for the CPU: its ONNX graph, run by OpenVINO in bf16.

On processors with native bfloat16 (AVX-512 BF16 or AMX) OpenVINO computes convolutions in
bf16 with fp32 accumulation; no calibration is needed, unlike INT8. The result is a new model
folder holding the fp32 ONNX graph, whose card names the ``openvino-bf16`` backend (so the
``auto`` backend, ``detect``, ``evaluate`` and the service run it in bf16) and whose
``lineage`` names the parent and its SHA-256 (method ``converted``).

Example:
    >>> card = bf16_detector("cxr-tbx11k-yolov5s", "runs/bf16")  # doctest: +SKIP
    >>> card.backend, card.lineage.method  # doctest: +SKIP
    ('openvino-bf16', 'converted')
"""

from __future__ import annotations

from pathlib import Path

from insightray.engine.backends import require_bf16
from insightray.engine.export import export_onnx
from insightray.engine.weights import load_torch_model, save_copy_card
from insightray.models import Lineage, ModelCard
from insightray.models.catalog import CARD_FILE

__all__ = ["BF16_BACKEND", "bf16_detector"]

#: The backend a bf16 copy's card names.
BF16_BACKEND = "openvino-bf16"


def bf16_detector(model: str | Path | None, out_dir: str | Path) -> ModelCard:
    """Write a bfloat16 copy of a detector as a new model folder and return its card.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        out_dir: The new model folder.

    Raises:
        ConfigError: Not a PyTorch detector, or a processor without native bf16.
        MissingExtraError: OpenVINO or ONNX is not installed (``insightray[openvino]``).
    """
    require_bf16()
    card_path, parent, network = load_torch_model(model, "detection")
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    graph = export_onnx(network, target / "weights.onnx", parent.input_size)
    lineage = Lineage(
        "converted",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        {"runtime": "OpenVINO", "precision": "bf16 (fp32 accumulation)"},
        "none (no calibration)",
    )
    return save_copy_card(parent, lineage, graph, target / CARD_FILE, "bf16", "bfloat16",
                          backend=BF16_BACKEND)  # fmt: skip

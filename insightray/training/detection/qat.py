"""``optimize detect --qat``: quantisation-aware fine-tuning of a detector, written as the same
INT8 QDQ model folder ``--int8`` writes.

For when post-training INT8 (:func:`~insightray.engine.quantize.quantize_detector`) loses more
than the tolerance. Three steps:

1. the parent is fine-tuned through our detector trainer (``TrainConfig.init``, the
   :class:`~insightray.training.detection.prune.FineTune` settings ``--prune`` uses) with
   INT8 simulated in every backbone and neck convolution (:func:`fake_quantize`): the weight,
   with its batch norm folded in as the export folds it, is rounded per output channel to
   symmetric int8 in [-127, 127] (what ONNX Runtime's per-channel QDQ does to it), and the
   convolution's output, the sigmoid of its SiLU and the SiLU's output are rounded to uint8
   over moving min-max ranges, first measured on 16 calibration images. Gradients pass the
   rounding straight through. The Detect head's 1x1 convolutions and the decode are not
   touched: they stay float in the exported graph too. The batch norms' statistics are
   frozen (their scale and shift still learn): each convolution then computes in training
   what its folded, rounded form computes in the exported graph, and a few steps on batches
   of 8 mosaic images do not drag the statistics away from the parent's (a short float
   fine-tune with moving statistics costs the parent most of its mAP: BENCHMARKS.md,
   pruning);
2. the last epoch's EMA weights (``OUT/finetune/model_last/``, plain float weights: the fake
   quantisers are kept outside the state dict) are exported and quantised by the very code of
   ``--int8`` (ONNX Runtime static QDQ, per-channel int8 weights, uint8 activations calibrated
   on the same training images, the head and decode kept float);
3. ``OUT/`` holds that ``weights.onnx`` and a card whose lineage names the original parent and
   its SHA-256, the method ``qat``, the fine-tuning and quantisation settings and the data.
   ``detect``, ``evaluate detect``, the service and the registry take it as an ``--int8`` folder.

Why torch's own fake quantisation (``torch.ao.quantization.FakeQuantize`` and its observers)
and ONNX Runtime's QDQ writer, not NNCF: NNCF (checked against this environment: torch 2.14,
onnx 1.23, onnxruntime 1.32, OpenVINO 2026.4) would be a new dependency tree (ninja for its
compiled quantiser kernels, scikit-learn, networkx, pydot, ...) whose PyTorch path is tested on
an older torch (2.19.0 names torch 2.9 as its known-good version), for a graph ONNX Runtime
would then fuse as it fuses ours. Nor torch's QAT ``prepare`` plus the TorchScript exporter
(``dynamo=False``): eager ``prepare_qat`` needs the network rewritten around QuantStubs, FX
``prepare_qat_fx`` cannot trace the detector's input-size checks, and the exporter's
QuantizeLinear/DequantizeLinear pairs land where the fake quantisers sat, a second layout
beside ``--int8``'s. Writing the graph with the same quantiser keeps one QDQ layout (QLinearConv
fusion on ONNX Runtime, the decode float: :func:`~insightray.engine.quantize.float_nodes`),
one loader and one backend for both methods; the weight rounding simulated here is the one the
export applies, and the activation ranges are measured again on the fine-tuned weights by the
same calibrator.

Not simulated (ONNX Runtime quantises them, with ranges calibrated on the final weights): the
residual additions, concatenations, pooling and upsampling outputs, whose inputs are already
rounded.

Example:
    >>> card = qat_detector("cxr-tbx11k-yolov5s", "runs/qat",
    ...                     FineTune("tbx11k/data.yaml", epochs=1), calibration)  # doctest: +SKIP
    >>> card.lineage.method, card.weights_file  # doctest: +SKIP
    ('qat', 'weights.onnx')
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from rich.console import Console
from torch import nn
from torch.ao.quantization import (
    FakeQuantize,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
)
from torch.nn import functional as F

from insightray.engine.quantize import quantize_detector
from insightray.engine.weights import save_copy_card, torch_model_card
from insightray.errors import ConfigError
from insightray.models import Lineage, ModelCard, load_card
from insightray.models.detection.yolo import YoloV5
from insightray.models.layers import Conv
from insightray.training.detection.prune import (
    FineTune,
    fine_tune_config,
    fine_tune_detector,
    image_batches,
)

__all__ = ["QAT_SCHEME", "fake_quantize", "fake_quantized_convs", "qat_detector"]

#: What the fine-tune simulates, for the card.
QAT_SCHEME = (
    "fake quantisation in PyTorch: per-channel symmetric int8 weights (batch norm folded), "
    "uint8 convolution outputs, SiLU sigmoids and SiLU outputs (moving min-max ranges); "
    "batch-norm statistics frozen"
)
#: Where the fake quantisers live on a convolution block: an attribute, not a submodule, so
#: the state dict (checkpoints, the EMA, the model folder) keeps the float network's keys.
_QUANTISERS = "_fake_quant"
#: Calibration images the fake quantisers' first ranges are measured on (training moves them).
OBSERVER_IMAGES = 16


@dataclasses.dataclass
class _Quantisers:
    """One convolution block's fake quantisers."""

    weight: FakeQuantize
    conv: FakeQuantize
    sigmoid: FakeQuantize
    output: FakeQuantize

    def activations(self) -> tuple[FakeQuantize, ...]:
        return self.conv, self.sigmoid, self.output

    def to(self, device: torch.device) -> None:
        for quantiser in (self.weight, *self.activations()):
            quantiser.to(device)


def _weight_quantiser() -> FakeQuantize:
    """Per output channel, symmetric, [-127, 127]: ONNX Runtime's int8 per-channel weights."""
    return FakeQuantize(  # type: ignore[no-untyped-call]  # an averaging constant of 1: the current weight's range, each step
        observer=MovingAveragePerChannelMinMaxObserver,
        averaging_constant=1.0,
        quant_min=-127,
        quant_max=127,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )


def _activation_quantiser() -> FakeQuantize:
    """Per tensor, asymmetric uint8 over a moving min-max range: the QDQ activations."""
    return FakeQuantize(  # type: ignore[no-untyped-call]
        observer=MovingAverageMinMaxObserver,
        quant_min=0,
        quant_max=255,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )


def _quantised_forward(block: Conv, x: torch.Tensor) -> torch.Tensor:
    """:meth:`Conv.forward` with INT8 simulated; ranges are observed in training mode only."""
    quantisers: _Quantisers = block.__dict__[_QUANTISERS]
    device = x.device
    if quantisers.weight.scale.device != device:
        quantisers.to(device)
    for quantiser in quantisers.activations():
        quantiser.enable_observer(block.training)
    conv, norm = block.conv, block.bn
    if norm is None:
        y = conv._conv_forward(x, quantisers.weight(conv.weight), conv.bias)
    else:  # fold the norm into the weight, round it, unfold; the statistics stay frozen
        assert norm.running_var is not None and norm.weight is not None
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        folded = quantisers.weight(conv.weight * scale.reshape(-1, 1, 1, 1))
        y = conv._conv_forward(x, folded, None) / scale.reshape(1, -1, 1, 1)
        y = F.batch_norm(y, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                         training=False, eps=norm.eps)  # fmt: skip
    y = quantisers.conv(y)
    silu = isinstance(block.act, nn.SiLU)
    y = y * quantisers.sigmoid(torch.sigmoid(y)) if silu else block.act(y)
    return quantisers.output(y)  # type: ignore[no-any-return]


def fake_quantized_convs(network: nn.Module) -> list[Conv]:
    """The convolution blocks :func:`fake_quantize` has prepared."""
    return [m for m in network.modules() if isinstance(m, Conv) and _QUANTISERS in m.__dict__]


def fake_quantize(network: YoloV5, calibration: Iterable[torch.Tensor] = ()) -> None:
    """Simulate INT8 in every backbone and neck convolution of ``network``, in place.

    The Detect head (plain 1x1 convolutions) and the decode are left in float. The state
    dict is unchanged; a deep copy (the trainer's EMA) gets its own quantisers. Activation
    ranges are first measured on ``calibration`` batches, in eval mode (no weight or
    batch-norm change); during training they follow each batch's range (moving average).

    Args:
        network: The detector (not fused: the norms are folded on the fly).
        calibration: ``(B, C, H, W)`` float batches in [0, 1], e.g. training images.
    """
    for block in network.layers.modules():
        if isinstance(block, Conv) and _QUANTISERS not in block.__dict__:
            quantisers = _Quantisers(
                _weight_quantiser(), *(_activation_quantiser() for _ in range(3))
            )
            block.__dict__[_QUANTISERS] = quantisers
            block.forward = types.MethodType(_quantised_forward, block)  # type: ignore[method-assign]
    was_training = network.training
    _observe(network, calibration)
    network.train(was_training)


def _observe(network: YoloV5, calibration: Iterable[torch.Tensor]) -> None:
    """Run the calibration batches with the observers on and the network in eval mode."""
    blocks = fake_quantized_convs(network)
    with torch.no_grad():
        for batch in calibration:
            for block in blocks:
                block.train()  # observe (the norm below is switched back to running stats)
                if block.bn is not None:
                    block.bn.eval()
            network(batch)
    for block in blocks:
        block.eval()


def qat_detector(
    model: str | Path | None,
    out_dir: str | Path,
    fine_tune: FineTune,
    calibration: Sequence[Path],
    method: str = "percentile",
    console: Console | None = None,
) -> ModelCard:
    """Fine-tune a detector with INT8 simulated, then write it as an INT8 QDQ model folder.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        out_dir: The new model folder (``weights.onnx`` and ``card.json``, with the fine-tune
            run in ``finetune/``).
        fine_tune: The fine-tuning run's settings (at least one epoch, on training data).
        calibration: Training images (never the evaluation images): the fake quantisers'
            first ranges, and the export's calibration.
        method: The export's calibration method, as for ``--int8``.
        console: Where progress goes.

    Raises:
        ConfigError: No fine-tuning data, no epochs, no calibration images, or a parent that
            is not a trained PyTorch YOLOv5.
    """
    if not fine_tune.data:
        raise ConfigError("optimize detect --qat", "no fine-tuning data", "pass --data")
    if fine_tune.epochs < 1:
        raise ConfigError("optimize detect --qat", "no fine-tuning epochs",
                          "pass --epochs 1 or more (or use --int8 for no fine-tuning)")  # fmt: skip
    if not calibration:
        raise ConfigError(
            "optimize detect --qat", "no calibration images", "pass --calibration DIR_OR_LIST"
        )
    card_path, parent = torch_model_card(model)  # the trainer refuses a non-YOLOv5 network
    target = Path(out_dir)
    config = fine_tune_config(fine_tune, card_path.parent, parent, target / "finetune")
    batches = list(image_batches(calibration[:OBSERVER_IMAGES], parent))
    tuned_path = fine_tune_detector(config, console, lambda net: fake_quantize(net, batches))
    tuned = load_card(tuned_path)
    quantised = quantize_detector(tuned_path.parent, calibration, target, method,
                                  f"{len(calibration)} training images")  # fmt: skip
    settings = {"fake_quant": QAT_SCHEME} | quantised.lineage.settings
    settings |= {"fine_tune_epochs": fine_tune.epochs, "fine_tune_lr0": fine_tune.lr0,
                 "fine_tune_batch": fine_tune.batch_size,
                 "fine_tuned_sha256": tuned.weights_sha256}  # fmt: skip
    lineage = Lineage(
        "qat",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        settings,
        f"fine-tuned on {tuned.training_data}; calibrated on {len(calibration)} training images",
    )
    assert quantised.weights_file is not None
    return save_copy_card(parent, lineage, target / quantised.weights_file,
                          target / "card.json", "qat", "QAT INT8")  # fmt: skip

"""Structured channel pruning of a YOLOv5 detector with Torch-Pruning's dependency graph.

Whole output channels are removed (with the matching input channels of every layer that reads
them), so the network stays dense and really runs faster; unstructured sparsity would not
speed up dense kernels. Torch-Pruning (Fang et al., "DepGraph", CVPR 2023) traces the network
once and groups every pair of coupled layers: a C3 block's concatenated branches, the
residual additions inside it, the neck's Concat of backbone and head features and the batch
norm after each convolution are cut together, so the shapes stay consistent. The Detect
head's three output convolutions keep their output channels (anchors x (5 + classes)).

Channels are ranked by **group magnitude** (the L2 norm of a channel's weights summed over
every layer of its dependency group): data-free, deterministic and cheap on a CPU. Taylor
importance needs a labelled batch and a backward pass per step and is noisy with the few
images a CPU fine-tune sees; the fine-tuning after pruning recovers what the ranking loses.
Channel counts are rounded to multiples of 8, which vectorised CPU kernels favour.

Pruning leaves every batch norm with running statistics measured on channels that are gone:
on the bundled chest detector, 30 % pruning drops the highest objectness on a film from 0.72
to 0.0007, so no box survives. :func:`recalibrate_batchnorm` re-estimates them on a few dozen
training images (forward passes only, no labels, no weight changes; the "adaptive batch norm"
of Li et al., EagleEye, ECCV 2020), which brings it back to 0.65 before any fine-tuning.

Example:
    >>> from insightray.models.detection.yolo import YoloV5
    >>> model = YoloV5(num_classes=2, variant="n").eval()
    >>> report = prune_network(model, 0.5, 64)  # doctest: +SKIP
    >>> report.params_after < report.params_before  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from insightray.errors import ConfigError
from insightray.extras import import_extra
from insightray.models.detection.widths import conv_widths
from insightray.models.detection.yolo import YoloV5, count_parameters, gflops

__all__ = ["IMPORTANCE", "PruneReport", "check_ratio", "prune_network", "recalibrate_batchnorm"]

#: The channel ranking used (recorded in the card's lineage).
IMPORTANCE = "group L2 magnitude"
#: Pruned channel counts are multiples of this.
ROUND_TO = 8


@dataclass(frozen=True)
class PruneReport:
    """What pruning did to a network.

    Attributes:
        ratio: Fraction of the prunable channels removed from each layer.
        params_before: Parameters before pruning.
        params_after: Parameters after pruning.
        gflops_before: GFLOPs of one image at ``image_size`` before pruning.
        gflops_after: The same after pruning.
        image_size: The square side the GFLOPs were counted at.
        channel_widths: ``[out, in]`` of every convolution that pruning changed, by dotted
            name (merge them over the parent card's own, if it was pruned before).
        bn_images: Images the batch-norm statistics were re-estimated on afterwards (0: not).
    """

    ratio: float
    params_before: int
    params_after: int
    gflops_before: float
    gflops_after: float
    image_size: int
    channel_widths: dict[str, list[int]]
    bn_images: int = 0

    def settings(self) -> dict[str, Any]:
        """The figures for a card's lineage settings."""
        return {
            "ratio": self.ratio,
            "importance": IMPORTANCE,
            "round_to": ROUND_TO,
            "params_before": self.params_before,
            "params_after": self.params_after,
            f"gflops_{self.image_size}_before": round(self.gflops_before, 3),
            f"gflops_{self.image_size}_after": round(self.gflops_after, 3),
            "batchnorm_recalibration_images": self.bn_images,
        }


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` if it is a fraction of channels strictly between 0 and 1.

    Raises:
        ConfigError: It is not.
    """
    if not 0.0 < ratio < 1.0:
        raise ConfigError(
            f"--prune {ratio:g}",
            "the pruning ratio is the fraction of channels removed and must be in (0, 1)",
            "pass e.g. --prune 0.3 (30 % of channels removed) or --prune 0.5",
        )
    return ratio


def prune_network(model: YoloV5, ratio: float, image_size: int) -> PruneReport:
    """Remove ``ratio`` of the channels of each prunable layer of ``model``, in place.

    Args:
        model: The detector (float32, on the CPU, not fused); left in eval mode.
        ratio: Fraction of channels removed, in (0, 1).
        image_size: Square side of the traced input and of the GFLOPs count.

    Raises:
        ConfigError: A ratio outside (0, 1), or a model that is not a YOLOv5 detector.
        MissingExtraError: ``torch-pruning`` is not installed (``insightray[optimize]``).
    """
    check_ratio(ratio)
    if not isinstance(model, YoloV5):
        raise ConfigError(type(model).__name__, "only YOLOv5 detectors are pruned", "use one")
    pruning = import_extra("torch_pruning", "optimize")
    model.eval()
    widths_before = conv_widths(model)
    params_before, gflops_before = count_parameters(model), gflops(model, image_size)
    example = torch.zeros(1, model.in_channels, image_size, image_size)
    pruner = pruning.pruner.MetaPruner(
        model,
        example,
        importance=pruning.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=ratio,
        ignored_layers=list(model.detect.heads),
        round_to=ROUND_TO,
        output_transform=lambda outputs: outputs[0],
    )
    with torch.no_grad():
        pruner.step()
    model.eval()
    return PruneReport(
        ratio,
        params_before,
        count_parameters(model),
        gflops_before,
        gflops(model, image_size),
        image_size,
        {name: pair for name, pair in conv_widths(model).items() if widths_before[name] != pair},
    )


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate every batch norm's running mean and variance on ``batches``, in place.

    The statistics are reset and averaged over all the batches with equal weight (momentum
    ``None``); no gradient is taken and no weight changes. The model is left in eval mode.

    Returns:
        The number of images seen (0 leaves the statistics as they were).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    seen = 0
    for batch in batches:
        if seen == 0:
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a cumulative average over the batches
            model.train()
        with torch.no_grad():
            model(batch)
        seen += len(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    return seen

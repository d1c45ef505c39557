"""Imbalance-aware losses for a single fracture logit, chosen by name.

- ``bce``: plain binary cross-entropy on the logit.
- ``weighted_bce``: BCE with the positives weighted by ``beta = n_negative / n_positive``.
- ``focal``: focal loss (Lin et al., 2017), gamma 2 by default, with
  ``alpha = n_negative / n_total`` (the inverse class frequency of the positives; negatives
  get ``1 - alpha``), via torchvision's ``sigmoid_focal_loss``.
- ``smooth_bce``: BCE on targets smoothed to ``y (1 - eps) + eps / 2`` (eps 0.1 by default).

Example:
    >>> import torch
    >>> loss = build_loss("weighted_bce", negatives=300, positives=100)
    >>> round(float(loss(torch.zeros(2), torch.tensor([1.0, 0.0]))), 4)
    1.3863
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from insightray.errors import ConfigError

__all__ = ["LOSSES", "LossFunction", "build_loss"]

LOSSES = ("bce", "weighted_bce", "focal", "smooth_bce")

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(logits (N,), targets (N,) in {0, 1}) -> scalar loss``."""


def build_loss(
    name: str,
    *,
    negatives: int,
    positives: int,
    focal_gamma: float = 2.0,
    label_smoothing: float = 0.1,
) -> LossFunction:
    """Return the loss called ``name``, with class weights from the training counts.

    Args:
        name: One of :data:`LOSSES`.
        negatives: Not-fractured training images.
        positives: Fractured training images.
        focal_gamma: Focal loss gamma.
        label_smoothing: Epsilon of ``smooth_bce``.

    Raises:
        ConfigError: Unknown name, or a class without images.
    """
    if name not in LOSSES:
        raise ConfigError(f"loss {name!r}", "unknown loss", f"use one of {LOSSES}")
    if negatives < 1 or positives < 1:
        raise ConfigError(
            "training data",
            f"{positives} fractured and {negatives} not fractured images",
            "both classes need images",
        )
    if name == "weighted_bce":
        beta = torch.tensor(negatives / positives)
        return lambda logits, targets: F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=beta.to(logits.device)
        )
    if name == "focal":
        alpha = negatives / (negatives + positives)
        return lambda logits, targets: sigmoid_focal_loss(
            logits, targets, alpha=alpha, gamma=focal_gamma, reduction="mean"
        )
    if name == "smooth_bce":
        epsilon = label_smoothing
        return lambda logits, targets: F.binary_cross_entropy_with_logits(
            logits, targets * (1 - epsilon) + epsilon / 2
        )
    return F.binary_cross_entropy_with_logits

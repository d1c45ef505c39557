"""Optimiser pieces of detector training: parameter groups, the schedule and the weight EMA.

* :func:`build_optimizer`: SGD with Nesterov momentum over three groups: biases (no decay,
  their own warm-up), batch-norm weights (no decay) and all other weights (decayed).
* :func:`step_settings`: learning rate per group, momentum and gradient-accumulation count at
  an iteration. During the first ``round(warmup_epochs * iterations_per_epoch)`` iterations the
  bias learning rate falls linearly from ``warmup_bias_lr`` and the others rise linearly from 0
  to ``lr0 * lr_factor(epoch)``, momentum rises from ``warmup_momentum`` to ``momentum`` and the
  accumulation count from 1 to ``nominal_batch / batch_size``; afterwards each epoch uses
  ``lr0 * lr_factor(epoch)``.
* :class:`ModelEma`: ``ema = d * ema + (1 - d) * model`` with ``d = decay * (1 - exp(-u / tau))``
  after ``u`` updates, so early averages follow the model closely.

Example:
    >>> round(lr_factor(0, 10, 0.01, "cosine"), 3), round(lr_factor(10, 10, 0.01, "cosine"), 3)
    (1.0, 0.01)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "BIAS_GROUP",
    "DECAY_GROUP",
    "NO_DECAY_GROUP",
    "ModelEma",
    "StepSettings",
    "accumulation_steps",
    "build_optimizer",
    "lr_factor",
    "step_settings",
    "warmup_iterations",
]

BIAS_GROUP, DECAY_GROUP, NO_DECAY_GROUP = "bias", "decay", "no_decay"


def accumulation_steps(nominal_batch: int, batch_size: int) -> int:
    """Micro-batches whose gradients are summed before an optimiser step (at least 1).

    Example:
        >>> accumulation_steps(64, 16), accumulation_steps(64, 128)
        (4, 1)
    """
    return max(round(nominal_batch / batch_size), 1)


def build_optimizer(
    model: nn.Module,
    lr: float,
    momentum: float,
    weight_decay: float,
    nominal_batch: int,
    batch_size: int,
) -> torch.optim.SGD:
    """SGD (Nesterov) with groups ``bias``, ``decay`` and ``no_decay`` (named in ``"name"``).

    The decay is scaled by ``batch_size * accumulation / nominal_batch`` so that it acts per
    nominal batch whatever the micro-batch size.

    Example:
        >>> optimizer = build_optimizer(nn.Conv2d(1, 1, 1), 0.01, 0.9, 5e-4, 64, 16)
        >>> [group["name"] for group in optimizer.param_groups]
        ['bias', 'decay', 'no_decay']
    """
    biases: list[nn.Parameter] = []
    decayed: list[nn.Parameter] = []
    undecayed: list[nn.Parameter] = []
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            normalising = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))
            (undecayed if normalising else decayed).append(weight)
    scale = batch_size * accumulation_steps(nominal_batch, batch_size) / nominal_batch
    return torch.optim.SGD(
        [
            {"params": biases, "weight_decay": 0.0, "name": BIAS_GROUP},
            {"params": decayed, "weight_decay": weight_decay * scale, "name": DECAY_GROUP},
            {"params": undecayed, "weight_decay": 0.0, "name": NO_DECAY_GROUP},
        ],
        lr=lr,
        momentum=momentum,
        nesterov=True,
    )


def lr_factor(epoch: float, epochs: int, lrf: float, schedule: str) -> float:
    """Learning-rate multiplier at ``epoch``: 1 at the start, ``lrf`` after the last epoch.

    ``cosine``: ``(1 - cos(pi * epoch / epochs)) / 2 * (lrf - 1) + 1``;
    ``linear``: ``(1 - epoch / epochs) * (1 - lrf) + lrf``.

    Example:
        >>> lr_factor(5, 10, 0.0, "linear")
        0.5
    """
    if schedule == "cosine":
        return (1 - math.cos(math.pi * epoch / epochs)) / 2 * (lrf - 1) + 1
    if schedule == "linear":
        return (1 - epoch / epochs) * (1 - lrf) + lrf
    raise ValueError(f"unknown schedule {schedule!r}: use cosine or linear")


def warmup_iterations(warmup_epochs: float, iterations_per_epoch: int) -> int:
    """Number of warm-up iterations: ``round(warmup_epochs * iterations_per_epoch)``."""
    return round(warmup_epochs * iterations_per_epoch)


@dataclass(frozen=True)
class StepSettings:
    """Learning rate per group name, momentum and accumulation count at one iteration."""

    lr: dict[str, float]
    momentum: float
    accumulate: int


def step_settings(
    iteration: int,
    epoch: int,
    iterations_per_epoch: int,
    *,
    epochs: int,
    lr0: float,
    lrf: float,
    schedule: str,
    momentum: float,
    warmup_epochs: float,
    warmup_momentum: float,
    warmup_bias_lr: float,
    nominal_batch: int,
    batch_size: int,
) -> StepSettings:
    """The settings for global ``iteration`` (counted from 0 over all epochs) in ``epoch``.

    Example:
        >>> s = step_settings(0, 0, 10, epochs=3, lr0=0.01, lrf=0.01, schedule="cosine",
        ...                   momentum=0.937, warmup_epochs=1, warmup_momentum=0.8,
        ...                   warmup_bias_lr=0.1, nominal_batch=64, batch_size=16)
        >>> s.lr, s.momentum, s.accumulate
        ({'bias': 0.1, 'decay': 0.0, 'no_decay': 0.0}, 0.8, 1)
    """
    target = lr0 * lr_factor(epoch, epochs, lrf, schedule)
    steps = accumulation_steps(nominal_batch, batch_size)
    warmup = warmup_iterations(warmup_epochs, iterations_per_epoch)
    if iteration >= warmup:
        rates = dict.fromkeys((BIAS_GROUP, DECAY_GROUP, NO_DECAY_GROUP), target)
        return StepSettings(rates, momentum, steps)
    t = iteration / warmup
    rates = {
        BIAS_GROUP: warmup_bias_lr + t * (target - warmup_bias_lr),
        DECAY_GROUP: t * target,
        NO_DECAY_GROUP: t * target,
    }
    ramped = 1 + t * (nominal_batch / batch_size - 1)
    return StepSettings(
        rates,
        warmup_momentum + t * (momentum - warmup_momentum),
        max(1, round(ramped)),
    )


class ModelEma:
    """Exponential moving average of a model's weights and floating buffers.

    Args:
        model: The model to average (its unwrapped module under DDP).
        decay: The asymptotic decay.
        tau: Updates over which the decay ramps up, ``d = decay * (1 - exp(-updates / tau))``.
        updates: Updates already made (when resuming).

    Example:
        >>> ema = ModelEma(nn.Linear(2, 2))
        >>> ema.update(nn.Linear(2, 2)); ema.updates
        1
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0
    ) -> None:
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def decay_at(self, updates: int) -> float:
        """The decay used for the ``updates``-th update."""
        return self.decay * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current weights into the average."""
        self.updates += 1
        d = self.decay_at(self.updates)
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(current[name].detach().to(value.dtype), alpha=1 - d)
            else:
                value.copy_(current[name])

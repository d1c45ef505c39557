"""The fracture classifier's optimiser steps: one seam for central and federated training.

:class:`StepRunner` holds what a run of steps needs (loss, AdamW/SGD optimiser, warm-up +
cosine schedule, AMP scaler, augmentation, sampler and its random stream) and
:meth:`StepRunner.step` takes one step. :func:`~insightray.training.fracture.trainer.
train_fracture` drives it between validations; :func:`train_local_epochs` drives it for a
fixed number of epochs from given weights, which is one federated round at a site. With
``proximal_mu > 0`` the loss gains FedProx's proximal term ``mu / 2 * ||w - w_global||^2``
(Li et al. 2020) against the weights the runner started from. A ``distill`` callable
(:class:`~insightray.training.fracture.distill.Distiller`) turns the hard loss into the
distillation loss, given the augmented batch and the student's logits.

Example:
    >>> import numpy as np, torch
    >>> from insightray.training.fracture import FractureTrainConfig, build_classifier
    >>> config = FractureTrainConfig(model="efficientnet_lite0", image_size=32, batch_size=4)
    >>> x = np.random.default_rng(0).random((8, 32, 32)).astype(np.float16)
    >>> y = np.array([0, 1] * 4)
    >>> fit = train_local_epochs(build_classifier(config), config, x, y, torch.device("cpu"),
    ...                          epochs=1)
    >>> fit.steps, fit.images
    (2, 8)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.training.fracture.augmentation import FractureAugmentation
from insightray.training.fracture.config import FractureTrainConfig
from insightray.training.fracture.losses import build_loss
from insightray.training.proximal import anchor_of, proximal_term

__all__ = ["LocalFit", "StepLoss", "StepRunner", "memory_format", "train_local_epochs"]

StepLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(augmented batch, student logits, hard loss) -> the loss to minimise``."""


def memory_format(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``batch`` in channels_last on the CPU (depthwise and 3x3 convolutions run faster)."""
    return batch.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else batch


def _lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _optimizer(config: FractureTrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _order(labels: NDArray[np.int64], sampler: str, rng: np.random.Generator) -> NDArray[Any]:
    """One epoch of indices: a permutation, or a class-balanced draw with replacement."""
    if sampler == "balanced" and 0 < labels.sum() < labels.size:
        weights = np.where(labels == 1, 1 / labels.sum(), 1 / (labels.size - labels.sum()))
        return rng.choice(labels.size, labels.size, replace=True, p=weights / weights.sum())
    return rng.permutation(labels.size)


class StepRunner:
    """Optimiser steps over prepared images (see the module docstring).

    Args:
        model: The network, already on ``device``.
        config: Loss, optimiser, schedule, sampler, augmentation and seed.
        train_x: Prepared (enhanced, letterboxed, unnormalised) images, ``(N, H, W)``.
        train_y: Labels, ``(N,)``.
        device: Where to compute.
        total: Steps the learning-rate schedule spans.
        proximal_mu: FedProx coefficient (0: none).
        distill: Replaces the hard loss (distillation); ``None``: the hard loss.
    """

    def __init__(
        self,
        model: nn.Module,
        config: FractureTrainConfig,
        train_x: NDArray[np.float16],
        train_y: NDArray[np.int64],
        device: torch.device,
        total: int,
        proximal_mu: float = 0.0,
        distill: StepLoss | None = None,
    ) -> None:
        self.distill = distill
        self.model, self.config, self.device = model, config, device
        self.train_x, self.train_y = train_x, train_y
        positives = int(train_y.sum())
        self.loss_fn = build_loss(
            config.loss,
            negatives=int(train_y.size) - positives,
            positives=positives,
            focal_gamma=config.focal_gamma,
            label_smoothing=config.label_smoothing,
        )
        self.optimizer = _optimizer(config, model)
        warmup = max(1, round(total * config.warmup_fraction))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(total, warmup)
        )
        self.use_amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp)
        self.augment = FractureAugmentation(config.augment)
        self.rng = np.random.default_rng(config.seed)
        self.order: list[int] = []
        self.proximal_mu = proximal_mu
        self.anchor = anchor_of(model) if proximal_mu > 0 else []

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.scheduler.get_last_lr()[0])

    def step(self) -> float:
        """Take one optimiser step on a fresh augmented batch; return its loss."""
        config, device = self.config, self.device
        if len(self.order) < config.batch_size:
            self.order.extend(int(i) for i in _order(self.train_y, config.sampler, self.rng))
        chosen, self.order = self.order[: config.batch_size], self.order[config.batch_size :]
        images = np.stack(
            [self.augment(self.train_x[i].astype(np.float32), self.rng) for i in chosen]
        )
        batch = torch.from_numpy((images[:, None] - GRAY_MEAN) / GRAY_STD).to(device)
        targets = torch.from_numpy(self.train_y[chosen].astype(np.float32)).to(device)
        with torch.autocast(device_type=device.type, enabled=self.use_amp):
            logits = self.model(memory_format(batch, device)).reshape(len(chosen), -1)[:, -1]
            loss = self.loss_fn(logits.float(), targets)
            if self.distill is not None:
                loss = self.distill(batch, logits.float(), loss)
        if self.anchor:
            loss = loss + proximal_term(self.model, self.anchor, self.proximal_mu)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())


@dataclass(frozen=True)
class LocalFit:
    """What :func:`train_local_epochs` did.

    Attributes:
        steps: Optimiser steps taken.
        images: Training images available (the site's sample count).
        loss: Mean training loss over the steps.
    """

    steps: int
    images: int
    loss: float


def train_local_epochs(
    model: nn.Module,
    config: FractureTrainConfig,
    train_x: NDArray[np.float16],
    train_y: NDArray[np.int64],
    device: torch.device,
    *,
    epochs: int,
    proximal_mu: float = 0.0,
) -> LocalFit:
    """Train ``model`` in place for ``epochs`` passes over the data (one federated round).

    The schedule spans exactly these steps (warm-up, then cosine to zero), with a fresh
    optimiser: a site keeps no optimiser state between rounds.
    """
    steps = max(1, epochs * math.ceil(len(train_y) / config.batch_size))
    runner = StepRunner(model, config, train_x, train_y, device, steps, proximal_mu)
    model.train()
    losses = [runner.step() for _ in range(steps)]
    return LocalFit(steps, len(train_y), float(np.mean(losses)))

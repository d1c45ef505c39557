"""The detector's optimiser steps: one seam for central and federated training.

:class:`StepRunner` holds what a run of steps needs (the model, its DDP wrapper, the YOLO
loss, SGD, the AMP scaler, the EMA and FedProx's anchor) and :meth:`StepRunner.train_epoch`
runs one epoch of it: per batch the schedule's learning rate and momentum (warm-up, then
linear or cosine decay), the loss, gradients accumulated to the nominal batch, clipping, the
optimiser step and the EMA update.
:func:`~insightray.training.detection.trainer.train_detector` drives it between validations;
:func:`train_local_epochs` drives it for a few epochs from given weights, which is one
federated round at a site. With ``proximal_mu > 0`` the loss gains FedProx's proximal term
``mu / 2 * ||w - w_global||^2`` (Li et al. 2020) against the weights the round started from.

Example:
    >>> fit = train_local_epochs(model, config, dataset, first_epoch=0, epochs=1)  # doctest: +SKIP
    >>> fit.images  # doctest: +SKIP
    12
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from insightray.errors import ConfigError
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.data import DetectionTrainData, EpochSampler, collate_detection
from insightray.training.detection.datasets import DetectionDataset
from insightray.training.detection.distill import DetectorDistiller
from insightray.training.detection.distributed import epoch_sampler
from insightray.training.detection.loss import YoloLoss
from insightray.training.detection.optim import ModelEma, build_optimizer, step_settings
from insightray.training.detection.records import progress_bar
from insightray.training.proximal import anchor_of, proximal_term

__all__ = [
    "GRAD_CLIP_NORM",
    "LOG_EVERY",
    "LocalFit",
    "StepRunner",
    "config_optimizer",
    "step_settings_for",
    "train_data",
    "train_local_epochs",
]

GRAD_CLIP_NORM = 10.0
#: Without a terminal (a log file), print a progress line every this many iterations.
LOG_EVERY = 10


def step_settings_for(config: TrainConfig, iteration: int, epoch: int, per_epoch: int) -> Any:
    """:func:`~insightray.training.detection.optim.step_settings` with a config's values."""
    return step_settings(
        iteration,
        epoch,
        per_epoch,
        epochs=config.epochs,
        lr0=config.lr0,
        lrf=config.lrf,
        schedule=config.schedule,
        momentum=config.momentum,
        warmup_epochs=config.warmup_epochs,
        warmup_momentum=config.warmup_momentum,
        warmup_bias_lr=config.warmup_bias_lr,
        nominal_batch=config.nominal_batch,
        batch_size=config.batch_size,
    )


def config_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """:func:`~insightray.training.detection.optim.build_optimizer` with a config's values."""
    return build_optimizer(
        model,
        config.lr0,
        config.momentum,
        config.weight_decay,
        config.nominal_batch,
        config.batch_size,
    )


def train_data(dataset: DetectionDataset, config: TrainConfig) -> DetectionTrainData:
    """The augmented training items of ``dataset`` under ``config``."""
    return DetectionTrainData(
        dataset,
        config.image_size,
        config.channels,
        config.augment,
        config.seed,
        config.augment.border_value,
        cache=config.cache_images,
    )


@dataclass
class StepRunner:
    """What a run of optimiser steps needs (see the module docstring).

    Attributes:
        model: The detector (unwrapped).
        train_model: What the batches go through: ``model`` or its DDP wrapper.
        loss_fn: The YOLO loss for ``model``'s anchors and strides.
        optimizer: SGD from :func:`~insightray.training.detection.optim.build_optimizer`.
        scaler: The AMP gradient scaler (disabled off CUDA).
        device: Where the batches go.
        ema: The weights' moving average, updated after each optimiser step (or ``None``).
        world: DDP processes (the loss is scaled by it, as DDP averages gradients).
        use_amp: Autocast the forward pass.
        proximal_mu: FedProx coefficient (0: none); the anchor is the starting weights.
        last_step: Iteration of the last optimiser step.
        distiller: A teacher's distillation term added to the loss (or ``None``).
    """

    model: YoloV5
    train_model: nn.Module
    loss_fn: YoloLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    ema: ModelEma | None = None
    world: int = 1
    use_amp: bool = False
    proximal_mu: float = 0.0
    last_step: int = -1
    anchor: list[torch.Tensor] = field(default_factory=list)
    distiller: DetectorDistiller | None = None

    def __post_init__(self) -> None:
        if self.proximal_mu > 0 and not self.anchor:
            self.anchor = anchor_of(self.model)

    def optimizer_step(self, step: int) -> None:
        """Unscale, clip, step, update the EMA; ``step`` is the iteration."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.last_step = step

    def train_epoch(
        self,
        config: TrainConfig,
        loader: DataLoader,  # type: ignore[type-arg]
        epoch: int,
        per_epoch: int,
        console: Console,
        rank: int = 0,
    ) -> torch.Tensor:
        """One epoch of steps; the mean box, objectness and class losses.

        Raises:
            ConfigError: The loss diverged.
        """
        self.train_model.train()
        mean_loss, mean_distill = torch.zeros(3), torch.zeros(3)
        began = time.monotonic()
        with progress_bar(console, rank, f"epoch {epoch + 1}/{config.epochs}") as progress:
            task = progress.add_task("train", total=len(loader), losses="")
            for i, (images, targets, _, _) in enumerate(loader):
                step = i + per_epoch * epoch
                settings = step_settings_for(config, step, epoch, per_epoch)
                for group in self.optimizer.param_groups:
                    group["lr"], group["momentum"] = settings.lr[group["name"]], settings.momentum
                with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
                    images = images.to(self.device, non_blocking=True)
                    raw = self.train_model(images)
                    loss, parts = self.loss_fn(raw, targets.to(self.device))
                    if self.distiller is not None:
                        extra, distill_parts = self.distiller(images, raw)
                        loss = loss + extra
                        mean_distill = (mean_distill * i + distill_parts.cpu()) / (i + 1)
                if not torch.isfinite(loss):
                    raise ConfigError(f"epoch {epoch + 1}", "the loss diverged", "lower lr0")
                if self.anchor:
                    loss = loss + proximal_term(self.model, self.anchor, self.proximal_mu)
                self.scaler.scale(loss * self.world).backward()  # type: ignore[no-untyped-call]
                if step - self.last_step >= settings.accumulate:
                    self.optimizer_step(step)
                mean_loss = (mean_loss * i + parts.cpu()) / (i + 1)
                text = " ".join(f"{v:.4f}" for v in mean_loss.tolist())
                if self.distiller is not None:
                    kd = " ".join(f"{v:.4f}" for v in mean_distill.tolist())
                    text += f" kd obj/cls/feat {kd}"
                progress.update(task, advance=1, losses=f"box/obj/cls {text}")
                if rank == 0 and not console.is_terminal and (i + 1) % LOG_EVERY == 0:
                    elapsed = time.monotonic() - began
                    console.print(f"  {i + 1}/{len(loader)} box/obj/cls {text} {elapsed:.0f} s")
        return mean_loss


@dataclass(frozen=True)
class LocalFit:
    """What :func:`train_local_epochs` did: batches, training images, mean total loss."""

    steps: int
    images: int
    loss: float


def train_local_epochs(
    model: YoloV5,
    config: TrainConfig,
    dataset: DetectionDataset,
    *,
    first_epoch: int,
    epochs: int,
    proximal_mu: float = 0.0,
    console: Console | None = None,
) -> LocalFit:
    """Train ``model`` in place for ``epochs`` epochs on ``dataset`` (one federated round).

    The epochs ``first_epoch .. first_epoch + epochs - 1`` of a ``config.epochs``-epoch run
    of :func:`~insightray.training.detection.trainer.train_detector` (same augmentation,
    sampler, loss, SGD, warm-up and decay), from the given weights, with a fresh optimiser,
    no EMA, no validation and no files; gradients still pending at the end are applied.
    """
    device = torch.device(config.device if config.device != "auto" else "cpu")
    model.to(device)
    optimizer = config_optimizer(model, config)
    use_amp = config.amp and device.type == "cuda"
    data = train_data(dataset, config)
    per_epoch = math.ceil(len(data) / config.batch_size)
    sampler = EpochSampler(lambda e: epoch_sampler(config, data, e, 0, 1))
    loader = DataLoader(
        data,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_detection,
    )
    runner = StepRunner(
        model,
        model,
        YoloLoss(model.detect.anchors, model.detect.stride, len(dataset.class_names), config.loss),
        optimizer,
        torch.amp.GradScaler(device.type, enabled=use_amp),
        device,
        use_amp=use_amp,
        proximal_mu=proximal_mu,
        last_step=per_epoch * first_epoch - 1,
    )
    console = console or Console(stderr=True, quiet=True)
    total = torch.zeros(3)
    for epoch in range(first_epoch, first_epoch + epochs):
        sampler.set_epoch(epoch)
        total += runner.train_epoch(config, loader, epoch, per_epoch, console)
    last = per_epoch * (first_epoch + epochs) - 1
    if runner.last_step < last:
        runner.optimizer_step(last)
    return LocalFit(per_epoch * epochs, len(data), float(total.sum()) / epochs)

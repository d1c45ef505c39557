"""The detector training loop: YOLOv5 recipe on our own model, loss, augmentation and metrics.

Per epoch: augmented batches, SGD with warm-up then linear or cosine decay, gradients
accumulated to the nominal batch, AMP on CUDA, an EMA of the weights; then the EMA model is
validated (mAP at confidence 0.001, NMS IoU 0.6), ``metrics.csv`` and the plots are updated,
``last.pt`` (full resume state) is written and ``best.pt`` when the fitness
``0.1 * mAP50 + 0.9 * mAP50:95`` improves. Training stops after ``patience`` epochs without
improvement. At the end the best EMA weights and a model card are written to ``out/model/``
(``card.json`` plus weights), ready for ``insightray detect --model out/model``. One loader
with persistent workers serves every epoch; with ``time_limit_min`` the epoch count is
re-planned after each epoch so the run ends in time. Each epoch's steps are
:class:`~insightray.training.detection.steps.StepRunner`'s, the same steps a federated site
takes (``insightray federated simulate --task detect``).

Launched with ``torchrun --nproc_per_node N``, it trains with DistributedDataParallel (see
:mod:`~insightray.training.detection.distributed`); only rank 0 validates and writes files.

Example:
    >>> config = TrainConfig(data="tbx11k/data.yaml", model="yolov5s", image_size=416)
    >>> result = train_detector(config)  # doctest: +SKIP
    >>> result.card_path  # doctest: +SKIP
    PosixPath('runs/detect/train/model/card.json')
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.anchors import fit_model_anchors
from insightray.training.detection.autoanchor import AnchorCheck
from insightray.training.detection.config import TrainConfig, config_from_dict, config_to_dict
from insightray.training.detection.data import (
    EpochSampler,
    collate_detection,
    load_train_val,
)
from insightray.training.detection.distill import DetectorDistiller, load_detector_teacher
from insightray.training.detection.distributed import epoch_sampler, init_distributed
from insightray.training.detection.evaluate import evaluate_detector
from insightray.training.detection.loss import YoloLoss
from insightray.training.detection.optim import DECAY_GROUP, ModelEma
from insightray.training.detection.plots import plot_training_curves
from insightray.training.detection.records import (
    CSV_COLUMNS,
    append_metrics,
    epoch_line,
    save_atomic,
    write_json,
)
from insightray.training.detection.result import TrainResult, finish_run
from insightray.training.detection.start import start_model
from insightray.training.detection.steps import StepRunner, config_optimizer, train_data
from insightray.training.metrics import DetectionMetrics, plot_pr_curves
from insightray.training.runtime import (
    make_run_dir,
    restore_rng,
    rng_state,
    seed_everything,
    select_device,
)

__all__ = [
    "CSV_COLUMNS",
    "TrainResult",
    "fitness",
    "read_run_config",
    "train_detector",
]

#: Validation only letterboxes: a few workers keep up, and each validation starts them anew.
VAL_WORKERS = 4


def fitness(metrics: DetectionMetrics) -> float:
    """``0.1 * mAP50 + 0.9 * mAP50:95`` (missing values count as 0)."""
    return 0.1 * (metrics.map50 or 0.0) + 0.9 * (metrics.map50_95 or 0.0)


def read_run_config(out: str | Path) -> TrainConfig:
    """The config saved in a run's ``last.pt`` (for ``--resume``).

    Raises:
        InputNotFoundError: The folder holds no ``last.pt``.
    """
    path = Path(out) / "last.pt"
    if not path.is_file():
        raise InputNotFoundError(str(path), "no checkpoint to resume from", "check --out")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return config_from_dict(saved["config"], str(path))


def train_detector(
    config: TrainConfig,
    *,
    resume: bool = False,
    console: Console | None = None,
    prepare: Callable[[YoloV5], None] | None = None,
) -> TrainResult:
    """Train a detector as described in the module docstring.

    Args:
        config: The run's settings; ``config.out`` is the output folder.
        resume: Continue from ``config.out/last.pt`` (model, EMA, optimiser, scaler, epoch,
            best fitness, random states). Its anchors and weights win over ``config``'s.
        console: Where progress goes (default: standard error).
        prepare: Called on the network before training starts (e.g. to simulate INT8 with
            fake quantisation, :mod:`~insightray.training.detection.qat`); it must leave the
            state dict's keys as they are, since checkpoints and the model folder hold them.

    Raises:
        ConfigError: The model is not a YOLOv5 detector, the output folder already holds a run
            (without ``resume``), or the loss diverges.
        InputNotFoundError: ``resume`` without a checkpoint, or missing data.
    """
    run_began = time.monotonic()
    rank, local_rank, world = init_distributed(config.device)
    device = select_device(config.device, local_rank)
    console = console or Console(stderr=True)
    out = Path(config.out)
    if world > 1 and config.batch_size % world:
        raise ConfigError(f"batch {config.batch_size}", f"not divisible by {world}", "fix it")
    if resume and not (out / "last.pt").is_file():
        raise InputNotFoundError(str(out / "last.pt"), "no checkpoint to resume", "check --out")
    if not resume and (out / "last.pt").exists():
        raise ConfigError(str(out), "a run already exists here", "pass --resume or another --out")
    seed_everything(config.seed + rank)
    splits = load_train_val(config.data)
    names = splits.train.class_names
    model, starting = start_model(config, len(names))
    teacher = None
    if config.teacher:
        teacher = load_detector_teacher(config.teacher, names, config.channels)
    state: dict[str, Any] = {"epoch": -1, "best_fitness": -math.inf, "best_epoch": -1}
    anchor_check: AnchorCheck | None = None
    if resume:
        state = torch.load(out / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
    elif starting is None or not starting.keeps_head:  # fine-tuning keeps biases and anchors
        model.detect.initialise_biases(image_size=config.image_size)
        teacher_anchors = None if teacher is None else teacher.network.detect.anchors
        if teacher_anchors is not None and teacher_anchors.shape == model.detect.anchors.shape:
            model.detect.anchors.copy_(teacher_anchors)  # raw outputs compared per anchor
        elif config.autoanchor:
            anchor_check = fit_model_anchors(
                model, splits.train, config, console if rank == 0 else None
            )
    if prepare is not None:
        prepare(model)
    model.to(device)
    ema = ModelEma(model) if config.ema else None
    optimizer = config_optimizer(model, config)
    distiller = None
    if teacher is not None:
        distiller = DetectorDistiller(teacher, model, config.loss, config.distill_weight,
                                      config.distill_feature_weight).to(device)  # fmt: skip
        adaptors = list(distiller.parameters())
        if adaptors:  # trained with the student, in its decayed group
            group = next(g for g in optimizer.param_groups if g["name"] == DECAY_GROUP)
            optimizer.add_param_group({**group, "params": adaptors})
    use_amp = config.amp and device.type == "cuda"
    # Fixed input size: let cuDNN pick its fastest kernels (GPU runs are not bit-exact anyway).
    torch.backends.cudnn.benchmark = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
        if distiller is not None and state.get("distiller") is not None:
            distiller.load_state_dict(state["distiller"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
            ema.updates = int(state["ema_updates"])
        restore_rng(state["rng"])
    train_model: torch.nn.Module = model
    if world > 1:
        train_model = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    items = train_data(splits.train, config)
    batch = config.batch_size // world
    per_epoch = math.ceil(len(items) / batch)
    if rank == 0:
        make_run_dir(out)
        if anchor_check is not None:
            write_json(out / "anchors.json", anchor_check.to_dict())
        console.print(
            f"[bold]Training[/bold] {starting.card_path.parent if starting else config.model} on "
            f"{splits.description}; "
            f"{config.epochs} epochs at {config.image_size} px, batch {config.batch_size}"
            f" on {device} -> {out}",
            highlight=False,
            soft_wrap=True,
        )
    start = int(state["epoch"]) + 1
    best_fitness, best_epoch = float(state["best_fitness"]), int(state["best_epoch"])
    stopped_early, epoch = False, start - 1
    runner = StepRunner(
        model,
        train_model,
        YoloLoss(model.detect.anchors, model.detect.stride, len(names), config.loss),
        optimizer,
        scaler,
        device,
        ema=ema,
        world=world,
        use_amp=use_amp,
        distiller=distiller,
    )
    sampler = EpochSampler(lambda e: epoch_sampler(config, items, e, rank, world))
    loader = DataLoader(
        items,
        batch_size=batch,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_detection,
        drop_last=False,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
    )
    planned, durations = config.epochs, []  # epoch count and epoch times for the time limit
    while epoch + 1 < config.epochs:
        epoch += 1
        began = time.monotonic()
        sampler.set_epoch(epoch)
        mean_loss = runner.train_epoch(config, loader, epoch, per_epoch, console, rank)
        lr = next(g["lr"] for g in optimizer.param_groups if g["name"] == DECAY_GROUP)
        validate = (epoch + 1) % config.val_interval == 0 or epoch + 1 == config.epochs
        stop = False
        if rank == 0:
            evaluated = ema.module if ema is not None else model
            metrics = None
            if validate:
                metrics = evaluate_detector(
                    evaluated,
                    splits.val,
                    config.image_size,
                    batch_size=batch,
                    workers=min(config.workers, VAL_WORKERS),
                    device=str(device),
                    pad_value=config.augment.border_value,
                )
            score = fitness(metrics) if metrics is not None else None
            improved = score is not None and score > best_fitness
            if improved and score is not None:
                best_fitness, best_epoch = score, epoch
                plot_pr_curves(metrics, out / "pr_curves.png")  # type: ignore[arg-type]
            seconds = time.monotonic() - began
            durations.append(seconds)
            if config.time_limit_min > 0:
                epochs = _epochs_within_limit(config, planned, epoch + 1, durations, run_began)
                if epochs != config.epochs:
                    console.print(
                        f"Time limit {config.time_limit_min:g} min: {epochs} epochs "
                        f"(planned {planned}).",
                        highlight=False,
                    )
                    config = dataclasses.replace(config, epochs=epochs)
            append_metrics(
                out / "metrics.csv", epoch, mean_loss.tolist(), lr, metrics, score, seconds
            )
            plot_training_curves(out / "metrics.csv")
            checkpoint = {
                "epoch": epoch,
                "best_fitness": best_fitness,
                "best_epoch": best_epoch,
                "model": model.state_dict(),
                "ema": None if ema is None else ema.module.state_dict(),
                "ema_updates": 0 if ema is None else ema.updates,
                "optimizer": optimizer.state_dict(),
                "distiller": None if distiller is None else distiller.state_dict(),
                "scaler": scaler.state_dict(),
                "config": config_to_dict(config),
                "class_names": list(names),
                "metrics": {} if metrics is None else metrics.to_dict(),
                "anchors": model.detect.anchors.tolist(),
                "rng": rng_state(),
            }
            save_atomic(checkpoint, out / "last.pt")
            if improved:
                save_atomic(checkpoint, out / "best.pt")
            line = epoch_line(epoch, config.epochs, mean_loss, lr, metrics, seconds)
            console.print(line, highlight=False, soft_wrap=True)
            stop = validate and config.patience > 0 and epoch - best_epoch >= config.patience
        if world > 1:
            flag = [stop, config.epochs]
            dist.broadcast_object_list(flag, src=0)
            stop, config = bool(flag[0]), dataclasses.replace(config, epochs=int(flag[1]))
        if stop:
            stopped_early = True
            if rank == 0:
                console.print(f"Stopping early: no improvement for {config.patience} epochs.")
            break
    result = None
    if rank == 0:
        result = finish_run(config, splits.description, names, out, epoch, stopped_early)
        console.print(
            f"Best epoch {result.best_epoch + 1}: fitness {result.best_fitness:.4f}; "
            f"model card {result.card_path}",
            highlight=False,
            soft_wrap=True,
        )
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if result is None:  # other ranks: nothing was written by them
        return TrainResult(
            out,
            out / "model" / "card.json",
            best_epoch,
            best_fitness,
            epoch + 1,
            stopped_early,
            {},
            False,
        )
    return result


def _epochs_within_limit(
    config: TrainConfig, planned: int, done: int, durations: list[float], began: float
) -> int:
    """The epoch count, at most ``planned``, that ends this invocation within the time limit.

    ``done`` epochs are finished; ``durations`` are this invocation's epoch times, the first
    left out (it pays for worker start-up and cuDNN autotuning) and the last five averaged, so
    the count follows the real pace and may rise again. Setup before the first epoch counts.
    """
    remaining = config.time_limit_min * 60 - (time.monotonic() - began)
    recent = durations[1:][-5:]
    if not recent:
        return planned if remaining > 0 else done
    return min(planned, done + max(int(remaining // (sum(recent) / len(recent))), 0))

"""Self-supervised pre-training of a backbone on unlabelled radiographs, with ``lightly``.

``lightly`` (MIT) provides the maintained projection/prediction heads, losses and momentum
utilities of SimCLR, MoCo v2, BYOL and SwaV; the loop is a plain PyTorch loop (lightly's
own examples use PyTorch Lightning, which is not needed for one backbone on one device).

- ``simclr``: NT-Xent between two views (in-batch negatives).
- ``moco``: NT-Xent against a momentum encoder with a memory bank of negatives (MoCo v2).
- ``byol``: a predictor regresses the momentum encoder's projection (no negatives).
- ``swav``: swapped prediction of Sinkhorn cluster assignments over prototypes (two crops).

Images (DICOM through :mod:`insightray.imaging`, PNG, JPEG) are decoded once and letterboxed
to ``1.25 * image_size``; every step draws a batch and two :class:`RadiographViews` per image.
``out/`` receives ``backbone.safetensors`` (tensor names of the full classifier or detector,
so ``init_weights`` / ``load_pretrained`` take it), ``card.json`` (what it is, how trained)
and ``metrics.csv`` (the loss per step).

Example:
    >>> config = PretrainConfig(data=("unlabelled/",), method="simclr", steps=500)
    >>> result = pretrain(config)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.engine.preprocessing import prepare_pixels
from insightray.errors import ConfigError, InputNotFoundError
from insightray.extras import import_extra
from insightray.imaging import expand_inputs, read_image
from insightray.imaging.enhance import RadiographEnhancement
from insightray.models.catalog import sha256_file
from insightray.models.classification import load_pretrained
from insightray.training.runtime import make_run_dir, seed_everything, select_device
from insightray.training.ssl.backbone import SslBackbone
from insightray.training.ssl.views import RadiographViews

__all__ = ["METHODS", "PretrainConfig", "PretrainResult", "SslObjective", "pretrain"]

METHODS = ("simclr", "moco", "byol", "swav")
Log = Callable[[str], None]


@dataclass(frozen=True)
class PretrainConfig:
    """One pre-training run.

    Attributes:
        data: Folders or files of unlabelled images (labels, if any, are ignored).
        method: One of :data:`METHODS`.
        arch: A registered classifier (``efficientnet_lite0``...) or YOLOv5 (``yolov5s``).
        image_size: Side of each view.
        steps: Optimiser steps.
        batch_size: Images per step (two views each).
        lr: AdamW learning rate.
        temperature: NT-Xent temperature (simclr, moco).
        momentum: Momentum of the target encoder (moco, byol).
        memory_bank: Negatives kept by moco.
        prototypes: Number of SwaV prototypes.
        seed: Seed of weights, sampling and views.
        device: ``cpu``, ``cuda`` or ``auto``.
        max_images: Use at most this many images (0: all).
        init_weights: A weights file the backbone starts from ("": random), e.g. the
            packaged ImageNet Lite0 weights for domain-adaptive pre-training.
        out: Output folder.
    """

    data: tuple[str, ...] = ()
    method: str = "simclr"
    arch: str = "efficientnet_lite0"
    image_size: int = 96
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    temperature: float = 0.2
    momentum: float = 0.99
    memory_bank: int = 1024
    prototypes: int = 64
    seed: int = 0
    device: str = "auto"
    max_images: int = 0
    init_weights: str = ""
    out: str = "runs/pretrain"
    views: RadiographViews = field(default_factory=RadiographViews)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r}", "unknown", f"use one of {METHODS}")
        if self.batch_size < 2 or self.steps < 1 or self.image_size < 32:
            raise ConfigError("pretrain", "batch >= 2, steps >= 1, image size >= 32", "fix it")
        if not self.data:
            raise ConfigError("data", "no folder given", "pass --data DIR")


@dataclass(frozen=True)
class PretrainResult:
    """What a run produced: the backbone file, its card and the loss curve."""

    weights: Path
    card: Path
    losses: list[float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "weights": str(self.weights),
            "card": str(self.card),
            "first_loss": self.losses[0],
            "last_loss": self.losses[-1],
            "steps": len(self.losses),
            "seconds": round(self.seconds, 1),
        }


class SslObjective(nn.Module):
    """Backbone, heads and loss of one method; ``loss(view_a, view_b)`` is the step loss."""

    def __init__(self, config: PretrainConfig, backbone: SslBackbone) -> None:
        super().__init__()
        loss_mod = import_extra("lightly.loss", "ssl")
        heads = import_extra("lightly.models.modules", "ssl")
        self.method = config.method
        self.backbone = backbone
        width = backbone.out_features
        self.momentum = config.momentum
        if config.method == "simclr":
            self.projection = heads.SimCLRProjectionHead(width, 512, 128)
            self.criterion = loss_mod.NTXentLoss(temperature=config.temperature)
        elif config.method == "moco":
            self.projection = heads.MoCoProjectionHead(width, 512, 128)
            self.criterion = loss_mod.NTXentLoss(
                temperature=config.temperature, memory_bank_size=(config.memory_bank, 128)
            )
        elif config.method == "byol":
            self.projection = heads.BYOLProjectionHead(width, 1024, 128)
            self.prediction = heads.BYOLPredictionHead(128, 1024, 128)
            self.criterion = loss_mod.NegativeCosineSimilarity()
        else:
            self.projection = heads.SwaVProjectionHead(width, 512, 128)
            self.prototypes = heads.SwaVPrototypes(128, n_prototypes=config.prototypes)
            self.criterion = loss_mod.SwaVLoss()
        if config.method in ("moco", "byol"):
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
            self.target_projection = copy.deepcopy(self.projection).requires_grad_(False)

    def _target(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target_projection(self.target_backbone(images))  # type: ignore[no-any-return]

    def update_targets(self) -> None:
        """Move the momentum encoder towards the online one (moco, byol)."""
        if self.method in ("moco", "byol"):
            utils = import_extra("lightly.models.utils", "ssl")
            utils.update_momentum(self.backbone, self.target_backbone, self.momentum)
            utils.update_momentum(self.projection, self.target_projection, self.momentum)

    def loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The method's loss on two batches of views of the same images."""
        loss: torch.Tensor
        if self.method == "simclr":
            loss = self.criterion(
                self.projection(self.backbone(a)), self.projection(self.backbone(b))
            )
            return loss
        if self.method == "moco":
            loss = self.criterion(self.projection(self.backbone(a)), self._target(b))
            return loss
        if self.method == "byol":
            p_a = self.prediction(self.projection(self.backbone(a)))
            p_b = self.prediction(self.projection(self.backbone(b)))
            loss = self.criterion(p_a, self._target(b)) + self.criterion(p_b, self._target(a))
            return 0.5 * loss
        self.prototypes.normalize()
        outputs = []
        for views in (a, b):
            projected = nn.functional.normalize(self.projection(self.backbone(views)), dim=1)
            outputs.append(self.prototypes(projected))
        return self.criterion(outputs, [])  # type: ignore[no-any-return]


def _load_images(config: PretrainConfig, log: Log) -> np.ndarray[Any, np.dtype[np.float16]]:
    paths = expand_inputs([Path(p) for p in config.data])
    if not paths:
        raise InputNotFoundError(" ".join(config.data), "no images found", "give image folders")
    if config.max_images:
        paths = paths[: config.max_images]
    side = round(config.image_size * 1.25)
    out = np.empty((len(paths), side, side), np.float16)
    plain = RadiographEnhancement()
    for index, path in enumerate(paths):
        out[index] = prepare_pixels(read_image(path).pixels, plain, side, 1, 0.0, 1.0).tensor[0]
    log(f"{len(paths)} unlabelled images decoded at {side} px")
    return out


def _batch(
    images: np.ndarray[Any, Any], indices: Sequence[int], views: RadiographViews,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    pairs = [views(images[i].astype(np.float32), rng) for i in indices]
    a = np.stack([p[0] for p in pairs])[:, None]
    b = np.stack([p[1] for p in pairs])[:, None]
    return (
        torch.from_numpy((a - GRAY_MEAN) / GRAY_STD).float(),
        torch.from_numpy((b - GRAY_MEAN) / GRAY_STD).float(),
    )


def pretrain(config: PretrainConfig, log: Log = print) -> PretrainResult:
    """Pre-train ``config.arch`` with ``config.method`` and write the backbone and its card.

    Raises:
        InputNotFoundError: No images in ``data``.
        ConfigError: An unknown method or architecture.
        MissingExtraError: ``lightly`` is not installed (``insightray[ssl]``).
    """
    started = time.perf_counter()
    seed_everything(config.seed)
    device = select_device(config.device, hint="use --device cpu")
    views = RadiographViews(size=config.image_size)
    images = _load_images(config, log)
    if len(images) < 2:
        raise InputNotFoundError(" ".join(config.data), "fewer than 2 images", "add images")
    backbone = SslBackbone(config.arch)
    if config.init_weights:
        load_pretrained(backbone.model, config.init_weights)
    method = SslObjective(config, backbone).to(device)
    optimizer = torch.optim.AdamW(
        [p for p in method.parameters() if p.requires_grad], lr=config.lr, weight_decay=1e-4
    )
    out = make_run_dir(config.out)
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    method.train()
    with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "seconds"])
        for step in range(1, config.steps + 1):
            chosen = rng.choice(len(images), min(config.batch_size, len(images)), replace=False)
            a, b = _batch(images, [int(i) for i in chosen], views, rng)
            loss = method.loss(a.to(device), b.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            method.update_targets()
            losses.append(float(loss.detach()))
            writer.writerow([step, losses[-1], round(time.perf_counter() - started, 1)])
            if step == 1 or step % 10 == 0 or step == config.steps:
                log(f"step {step}/{config.steps} loss {losses[-1]:.4f}")
    return _save(config, method.backbone, out, losses, time.perf_counter() - started, len(images))


def _save(
    config: PretrainConfig, backbone: SslBackbone, out: Path, losses: list[float],
    seconds: float, count: int,
) -> PretrainResult:  # fmt: skip
    from safetensors.torch import save_file

    weights = out / "backbone.safetensors"
    save_file(backbone.backbone_state(), str(weights))
    card = {
        "kind": "ssl-backbone",
        "arch": config.arch,
        "method": config.method,
        "weights_file": weights.name,
        "weights_sha256": sha256_file(weights),
        "in_channels": 1,
        "normalisation": {"mean": GRAY_MEAN, "std": GRAY_STD},
        "images": count,
        "data": list(config.data),
        "config": {k: v for k, v in asdict(config).items() if k != "views"},
        "views": asdict(config.views) | {"size": config.image_size},
        "losses": {"first": losses[0], "last": losses[-1]},
        "seconds": round(seconds, 1),
        "usage": "start a classifier or a detector of the same architecture from it: "
        "train fracture --init DIR, train detect --init DIR",
        "notes": "Self-supervised (labels unused). No claim of benefit without the benchmark.",
    }
    card_path = out / "card.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return PretrainResult(weights, card_path, losses, seconds)

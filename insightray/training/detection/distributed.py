"""Where one training process runs: its torchrun rank and its share of the data.

Launched with ``torchrun --nproc_per_node N``, torchrun sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, Gloo on the
CPU). Without torchrun the run is a world of one. The rank's device comes from
:func:`insightray.training.runtime.select_device` with ``local_rank``.

Example:
    >>> init_distributed("cpu") if "WORLD_SIZE" not in os.environ else (0, 0, 1)
    (0, 0, 1)
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, RandomSampler, Sampler

from insightray.errors import ConfigError
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.data import DetectionTrainData, inverse_frequency_sampler

__all__ = ["epoch_sampler", "init_distributed", "is_main_process"]


def _torchrun_ranks() -> tuple[int, int, int]:
    """``(rank, local_rank, world)`` as torchrun set them; ``(0, 0, 1)`` without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world


def is_main_process() -> bool:
    """Whether this is rank 0 (always, without torchrun): the process that writes files."""
    return _torchrun_ranks()[0] == 0


def init_distributed(device: str) -> tuple[int, int, int]:
    """Join torchrun's process group if there is one; returns ``(rank, local_rank, world)``."""
    rank, local_rank, world = _torchrun_ranks()
    if world == 1:
        return rank, local_rank, world
    use_nccl = device != "cpu" and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return rank, local_rank, world


def epoch_sampler(
    config: TrainConfig, data: DetectionTrainData, epoch: int, rank: int, world: int
) -> Sampler[int]:
    """This process's order of ``epoch``, seeded by ``(seed, epoch)``: a resumed run repeats it.

    Raises:
        ConfigError: The inverse-frequency sampler was asked for under DDP.
    """
    if world > 1:
        if config.sampler != "none":
            raise ConfigError("sampler", "inverse_frequency is not supported with DDP", "use none")
        sampler: DistributedSampler[Any] = DistributedSampler(
            data, world, rank, shuffle=True, seed=config.seed
        )
        sampler.set_epoch(epoch)
        return sampler
    seed = config.seed * 100_003 + epoch
    if config.sampler == "inverse_frequency":
        return inverse_frequency_sampler(data.dataset, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return RandomSampler(data, generator=generator)

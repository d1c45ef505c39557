"""Where and how a training run executes: seeds, device, CPU threads, run folder, RNG states.

Every trainer (detector, fracture classifier, NER tagger, BERT token classifier, text
classifier, intent head) seeds, picks its device and limits its threads through this module,
so the rules are the same everywhere: :func:`seed_everything` seeds Python, NumPy and torch
(every device); :func:`select_device` resolves ``auto``/``cpu``/``cuda``/``cuda:N`` and fails
with a :class:`~insightray.errors.ConfigError` when CUDA is asked for but absent;
:func:`torch_threads` limits torch's CPU threads for a block; :func:`make_run_dir` creates the
output folder. :func:`rng_state` and :func:`restore_rng` carry the random states through a
checkpoint, so a resumed run draws what an uninterrupted one would have.

Example:
    >>> seed_everything(7)
    >>> first = torch.rand(1)
    >>> seed_everything(7)
    >>> bool(torch.equal(first, torch.rand(1)))
    True
    >>> select_device("cpu")
    device(type='cpu')
    >>> with torch_threads(None):  # None or 0: leave torch's setting alone
    ...     pass
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insightray.errors import ConfigError

__all__ = [
    "make_run_dir",
    "restore_rng",
    "rng_state",
    "seed_everything",
    "select_device",
    "set_threads",
    "torch_threads",
]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(
    setting: str, local_rank: int | None = None, *, hint: str = "use --device cpu"
) -> torch.device:
    """The device for ``setting``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.

    Args:
        setting: The configured device.
        local_rank: Under torchrun, this process's GPU: plain ``cuda`` becomes ``cuda:local_rank``.
        hint: What the error tells the user to do (the option or config key they set).

    Raises:
        ConfigError: CUDA was asked for but is not available.
    """
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {setting}", "CUDA is not available", hint)
    if setting == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(setting)


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads for the rest of the process; ``None`` or 0 leaves them."""
    if threads:
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's CPU threads inside the block and restore the previous number after."""
    before = torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_run_dir(path: str | Path) -> Path:
    """Create the run's output folder (and its parents) if needed; return it as a ``Path``."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch and (when present) CUDA random states, checkpoint-ready."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the random states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

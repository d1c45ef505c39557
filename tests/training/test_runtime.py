"""The shared run helpers every trainer uses (insightray.training.runtime)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.errors import ConfigError
from insightray.training.runtime import (
    make_run_dir,
    restore_rng,
    rng_state,
    seed_everything,
    select_device,
    torch_threads,
)


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_python_numpy_and_torch() -> None:
    seed_everything(3)
    first = _draws()
    seed_everything(3)
    assert _draws() == first


def test_rng_state_round_trip() -> None:
    seed_everything(5)
    state = rng_state()
    expected = _draws()
    _draws()
    restore_rng(state)
    assert _draws() == expected


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_select_device_without_cuda_names_the_fix() -> None:
    with pytest.raises(ConfigError) as config_key:
        select_device("cuda", hint="use device: cpu")
    assert config_key.value.hint == "use device: cpu"
    with pytest.raises(ConfigError) as option:
        select_device("cuda:1", 0)
    assert option.value.hint == "use --device cpu"


def test_torch_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_make_run_dir(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path / "a" / "b")
    assert folder.is_dir()
    assert make_run_dir(folder) == folder

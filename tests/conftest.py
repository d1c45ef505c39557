"""Shared fixtures: the real data in ../shared/data, found through INSIGHTRAY_DATA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from insightray.config import data_root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared medical data folder; tests that need it skip when it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared data not found at {root}: set INSIGHTRAY_DATA")
    return root


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Two busy cores make intra-op threads spin; one thread is faster and steadier here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data.yaml over 8 real TBX11K training and 4 validation images (list files)."""
    root = shared_data / "cxr" / "tbx11k"
    if not (root / "data.yaml").is_file():
        pytest.skip("TBX11K sample not found")
    folder = tmp_path_factory.mktemp("tiny_tbx11k")
    for split, count in (("train", 8), ("val", 4)):
        entries = (root / f"{split}_list.txt").read_text().split()[:count]
        (folder / f"{split}.txt").write_text("".join(f"{root / e}\n" for e in entries))
    (folder / "data.yaml").write_text(
        "train: train.txt\nval: val.txt\n"
        "names: [ActiveTuberculosis, ObsoletePulmonaryTuberculosis]\n"
    )
    return folder / "data.yaml"

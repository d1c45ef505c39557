"""Small real fracture models and labelled folders for tests (no training, no shared data)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insightray.engine.weights import write_model
from insightray.imaging import write_png
from insightray.models import ModelCard, create_model, model_defaults


def make_fracture_model(
    folder: Path,
    name: str = "efficientnet_lite0",
    *,
    size: int = 64,
    threshold: float = 0.5,
    enhancement: dict[str, Any] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised classifier with a complete card; return the card path."""
    torch.manual_seed(seed)
    kwargs = dict(model_kwargs or {})
    model = create_model(name, num_classes=1, in_channels=1, **kwargs)
    card = ModelCard(
        name=name,
        task="classification",
        version="0.0.1",
        labels=("fractured",),
        input_size=(size, size),
        preprocessing={
            "channels": 1,
            "mean": 0.449,
            "std": 0.226,
            "enhancement": dict(enhancement or {}),
            "model_kwargs": kwargs,
        },
        explain={"cam_layer": model_defaults(name).cam_layer},
        thresholds={"operating_point": threshold},
        data_licence="synthetic",
    )
    write_model(folder, model, card)
    return folder / "card.json"


def synthetic_radiograph(rng: np.random.Generator, fractured: bool, shape=(60, 48)) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A bright 'bone' bar on dark background, with a dark gap across it when fractured."""
    image = rng.normal(0.1, 0.02, shape).astype(np.float32)
    image[:, shape[1] // 3 : 2 * shape[1] // 3] = 0.8
    if fractured:
        row = int(rng.integers(shape[0] // 4, 3 * shape[0] // 4))
        image[row : row + 3, :] = 0.1
    return np.clip(image, 0, 1)


def make_labelled_folder(folder: Path, count: int = 16, seed: int = 0) -> Path:
    """``folder/images/*.png`` plus ``images.csv`` (image, group, fractured), both classes."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        fractured = index % 2 == 1
        name = f"images/case{index:02d}.png"
        write_png(synthetic_radiograph(rng, fractured), folder / name)
        rows.append({"image": name, "group": str(index // 2), "fractured": int(fractured)})
    with (folder / "images.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "group", "fractured"])
        writer.writeheader()
        writer.writerows(rows)
    return folder

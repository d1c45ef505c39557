"""What a training run records: progress, metrics.csv rows, checkpoints and random states.

Example:
    >>> epoch_line(0, 10, torch.tensor([0.1, 0.05, 0.02]), 0.01, None, 12.5)
    'epoch 1/10  loss box 0.1000 obj 0.0500 cls 0.0200  lr 0.01000  12.5 s'
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from insightray.training.metrics import DetectionMetrics

__all__ = [
    "CSV_COLUMNS",
    "append_metrics",
    "epoch_line",
    "progress_bar",
    "restore_rng",
    "rng_state",
    "save_atomic",
    "seed_everything",
    "write_json",
]

CSV_COLUMNS = (
    "epoch",
    "box_loss",
    "obj_loss",
    "cls_loss",
    "lr",
    "map40",
    "map50",
    "map50_95",
    "precision",
    "recall",
    "fitness",
    "seconds",
)


def progress_bar(console: Console, rank: int, title: str) -> Progress:
    return Progress(
        TextColumn(title),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[losses]}"),
        console=console,
        transient=True,
        disable=rank != 0,
    )


def epoch_line(
    epoch: int,
    epochs: int,
    loss: torch.Tensor,
    lr: float,
    metrics: DetectionMetrics | None,
    seconds: float,
) -> str:
    box, obj, cls = loss.tolist()
    line = f"epoch {epoch + 1}/{epochs}  loss box {box:.4f} obj {obj:.4f} cls {cls:.4f}"
    line += f"  lr {lr:.5f}"
    if metrics is not None:
        line += f"  mAP40 {metrics.map40 or 0:.4f} mAP50 {metrics.map50 or 0:.4f}"
        line += f" mAP50-95 {metrics.map50_95 or 0:.4f}"
    return line + f"  {seconds:.1f} s"


def append_metrics(
    path: Path,
    epoch: int,
    losses: list[float],
    lr: float,
    metrics: DetectionMetrics | None,
    score: float | None,
    seconds: float,
) -> None:
    values: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "")
    values.update(epoch=epoch + 1, lr=f"{lr:.6g}", seconds=f"{seconds:.2f}")
    values.update(zip(("box_loss", "obj_loss", "cls_loss"), losses, strict=True))
    if metrics is not None:
        for key in ("map40", "map50", "map50_95", "precision", "recall"):
            value = getattr(metrics, key)
            values[key] = "" if value is None else f"{value:.6f}"
        values["fitness"] = f"{score:.6f}"
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(values)


def save_atomic(checkpoint: dict[str, Any], path: Path) -> None:
    """Write atomically, so an interrupted save never leaves a broken checkpoint."""
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
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
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

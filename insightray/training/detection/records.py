"""What a training run records: progress, metrics.csv rows and checkpoints.

Example:
    >>> epoch_line(0, 10, torch.tensor([0.1, 0.05, 0.02]), 0.01, None, 12.5)
    'epoch 1/10  loss box 0.1000 obj 0.0500 cls 0.0200  lr 0.01000  12.5 s'
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from insightray.training.metrics import DetectionMetrics

__all__ = [
    "CSV_COLUMNS",
    "append_metrics",
    "epoch_line",
    "progress_bar",
    "save_atomic",
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

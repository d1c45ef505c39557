"""``insightray pretrain``: self-supervised pre-training of a backbone on unlabelled images.

Example:
    insightray pretrain --method simclr --arch efficientnet_lite0 --data xrays/ --out runs/ssl
    insightray train fracture --data labelled/ --init runs/ssl     # start from it
    insightray pretrain --method byol --arch yolov5s --data xrays/ --out runs/ssl-yolo
    insightray train detect --data data.yaml --model yolov5s --init runs/ssl-yolo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import app, err


@app.command("pretrain")
def pretrain_command(
    data: Annotated[
        list[Path], typer.Option("--data", help="Unlabelled image folders/files (repeatable).")
    ],
    method: Annotated[str, typer.Option("--method", help="simclr, moco, byol or swav.")] = (
        "simclr"
    ),
    arch: Annotated[
        str, typer.Option("--arch", help="A registered classifier or YOLOv5 (yolov5s...).")
    ] = "efficientnet_lite0",
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("runs/pretrain"),
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps.")] = 200,
    batch: Annotated[int, typer.Option("--batch", min=2, help="Images per step.")] = 32,
    img: Annotated[int, typer.Option("--img", min=32, help="View side in pixels.")] = 96,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 1e-3,
    max_images: Annotated[int, typer.Option("--max-images", min=0, help="0: all.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    init: Annotated[
        str, typer.Option("--init", help="Start from a weights file (domain-adaptive SSL).")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Pre-train a backbone without labels (SimCLR, MoCo v2, BYOL or SwaV, with lightly).

    Views suit radiographs: crops, small rotations, flips, intensity windows, gamma and
    CLAHE; no colour jitter. DICOM is read through the imaging layer. Writes
    OUT/backbone.safetensors and OUT/card.json; needs insightray[ssl].
    """
    from insightray.training.ssl import PretrainConfig, pretrain

    config = PretrainConfig(
        data=tuple(str(p) for p in data), method=method, arch=arch, image_size=img,
        steps=steps, batch_size=batch, lr=lr, seed=seed, device=device,
        max_images=max_images, init_weights=init, out=str(out_dir),
    )  # fmt: skip
    result = pretrain(config, log=lambda line: err.print(line, highlight=False))
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        err.print(f"backbone: {result.weights} (card {result.card})", highlight=False)

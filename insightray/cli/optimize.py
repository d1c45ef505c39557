"""``optimize detect``: a faster copy of a detector, written as a new model folder.

Example:
    insightray optimize detect --int8 --calibration ../shared/data/cxr/tbx11k/images --out runs/int8
    insightray evaluate detect --model runs/int8 --data data.yaml --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import optimize_app, out
from insightray.errors import ConfigError


@optimize_app.command("detect")
def optimize_detect(
    out_dir: Annotated[Path, typer.Option("--out", help="The new model folder.")],
    calibration: Annotated[
        Path,
        typer.Option(
            "--calibration",
            help="Images to calibrate on: a folder, or a list file of image paths (e.g. a "
            "YOLO train_list.txt). Never the images you evaluate on.",
        ),
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Static INT8 quantisation (ONNX Runtime, QDQ).")
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
    ] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Calibration images used.")] = 64,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: percentile, minmax or entropy.")
    ] = "percentile",
) -> None:
    """Quantise a detector to INT8; the new folder runs with `detect --model OUT`."""
    from insightray.engine.quantize import calibration_images, quantize_detector

    if not int8:
        raise ConfigError("optimize detect", "no method chosen", "pass --int8")
    chosen = calibration_images(calibration, images)
    card = quantize_detector(
        model, chosen, out_dir, method, description=f"{len(chosen)} images from {calibration}"
    )
    out.print(
        f"{out_dir} ({card.weights_file}, {card.version}); parent {card.lineage.parent}",
        highlight=False,
        soft_wrap=True,
    )

"""``optimize detect``: a faster copy of a detector, written as a new model folder.

Example:
    insightray optimize detect --int8 --calibration ../shared/data/cxr/tbx11k/images --out runs/int8
    insightray optimize detect --bf16 --out runs/bf16     # processors with AVX-512 BF16 or AMX
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
        Path | None,
        typer.Option(
            "--calibration",
            help="--int8: images to calibrate on: a folder, or a list file of image paths (e.g. "
            "a YOLO train_list.txt). Never the images you evaluate on.",
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="Static INT8 quantisation (ONNX Runtime, QDQ).")
    ] = False,
    bf16: Annotated[
        bool,
        typer.Option("--bf16", help="bfloat16 on OpenVINO (processors with AVX-512 BF16 or AMX)."),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
    ] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Calibration images used.")] = 64,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: percentile, minmax or entropy.")
    ] = "percentile",
) -> None:
    """Make a faster copy of a detector (one method per call); the new folder runs with
    `detect --model OUT`, `evaluate detect --model OUT` and the service."""
    if int8 + bf16 != 1:
        raise ConfigError("optimize detect", "choose one method", "pass --int8 or --bf16")
    if bf16:
        from insightray.engine.bf16 import bf16_detector

        card = bf16_detector(model, out_dir)
    else:
        from insightray.engine.quantize import calibration_images, quantize_detector

        if calibration is None:
            raise ConfigError("optimize detect --int8", "no calibration images",
                              "pass --calibration DIR_OR_LIST (training images)")  # fmt: skip
        chosen = calibration_images(calibration, images)
        card = quantize_detector(
            model, chosen, out_dir, method, description=f"{len(chosen)} images from {calibration}"
        )
    out.print(
        f"{out_dir} ({card.weights_file}, {card.version}); parent {card.lineage.parent}",
        highlight=False,
        soft_wrap=True,
    )

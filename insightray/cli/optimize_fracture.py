"""``optimize fracture``: a faster fracture classifier, one method per call.

``--int8``: static INT8 quantisation of the ONNX export (the new folder is OUT);
``--distill-from TEACHER``: a student trained by `train fracture`'s loop with a larger model
or an ensemble as its teacher (the run folder is OUT, the model OUT/model).

Example:
    insightray optimize fracture --int8 --calibration train_images/ --out runs/fracture-int8
    insightray optimize fracture --distill-from runs/ensemble \\
        --config configs/fracture/lite0-imagenet-cpu.yaml \\
        --data ../shared/data/fracture/bone_fracture_roboflow --out runs/distilled
    insightray evaluate fracture --model runs/distilled/model --data DIR --json
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from insightray.cli.common import err, optimize_app, out
from insightray.cli.fracture import fracture_config
from insightray.cli.optimize import report_copy
from insightray.errors import ConfigError

if TYPE_CHECKING:  # the CLI starts without importing torch
    from insightray.models import ModelCard


@optimize_app.command("fracture")
def optimize_fracture(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="--int8: the new model folder; --distill-from: the run "
            "folder, the model in OUT/model.",
        ),
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Static INT8 quantisation (ONNX Runtime, QDQ).")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="--int8: training images to calibrate on, a folder or a list file of image "
            "paths. Never the images you evaluate on.",
        ),
    ] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Calibration images used.")] = 64,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: percentile, minmax or entropy.")
    ] = "percentile",
    distill_from: Annotated[
        str | None,
        typer.Option(
            "--distill-from",
            help="Teacher: a fracture model or `train fracture-ensemble` folder, card or name.",
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder with images.csv, class folders, or CSV.")
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="The student's training config YAML (configs/fracture/)."),
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Weight of the teacher's soft term, in [0, 1].")
    ] = 0.5,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Softening temperature T > 0.")
    ] = 4.0,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Fixed optimiser steps.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="--int8: the parent (card, folder or bundled name); "
            "--distill-from: the student architecture, e.g. efficientnet_lite0.",
        ),
    ] = None,
    img: Annotated[int | None, typer.Option("--img", min=32, help="Student input side.")] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option("--pretrained/--scratch", help="Lite0 student: ImageNet weights or not."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0)] = None,
) -> None:
    """Make a faster fracture classifier. --int8: the new folder runs with `classify fracture
    --model OUT` and `evaluate fracture --model OUT` (no Grad-CAM: explain the parent).
    --distill-from: a student trained by `train fracture`'s loop with loss = (1 - alpha) * hard
    loss + alpha * T^2 * KL of the softened logits, the teacher run on each augmented batch; the
    student takes the teacher's enhancement, and OUT/model's card has lineage "distilled"
    (teacher, its SHA-256, alpha, T)."""
    if int8 == (distill_from is not None):
        raise ConfigError("optimize fracture", "choose exactly one method",
                          "pass --int8 or --distill-from TEACHER")  # fmt: skip
    if int8:
        report_copy(out_dir, _quantize(out_dir, calibration, images, method, model))
        return
    from insightray.training.fracture.distill import (
        DistillSettings,
        distill_fracture,
        load_teacher,
    )

    settings = DistillSettings(alpha, temperature)
    teacher = load_teacher(distill_from)
    overrides: dict[str, Any] = {
        "data": None if data is None else str(data.resolve()),
        "model": model,
        "epochs": epochs,
        "max_steps": steps,
        "image_size": img,
        "pretrained": pretrained,
        "device": device,
        "seed": seed,
        "out": str(out_dir),
        "preprocessing": teacher.enhancement.to_dict(),
    }
    if config_file is None:  # without a config, the student sees the teacher's input size
        overrides["image_size"] = img or teacher.input_size
    config = fracture_config(config_file, overrides, "optimize fracture")
    result = distill_fracture(
        config, teacher, settings, log=lambda line: err.print(line, highlight=False)
    )
    out.print(
        f"distilled from {teacher.name}: best validation AUC {result.val.auc:.4f} at step "
        f"{result.best_step} -> {result.card_path}",
        highlight=False,
        soft_wrap=True,
    )


def _quantize(
    out_dir: Path, calibration: Path | None, images: int, method: str, model: str | None
) -> ModelCard:
    from insightray.engine.quantize import calibration_images, quantize_classifier

    if calibration is None:
        raise ConfigError("optimize fracture --int8", "no calibration images",
                          "pass --calibration DIR_OR_LIST (training images)")  # fmt: skip
    chosen = calibration_images(calibration, images)
    return quantize_classifier(
        model, chosen, out_dir, method, description=f"{len(chosen)} images from {calibration}"
    )

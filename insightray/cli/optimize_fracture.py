"""``optimize fracture --distill-from TEACHER``: a student classifier taught by a larger model.

Example:
    insightray optimize fracture --distill-from runs/ensemble \\
        --config configs/fracture/lite0-imagenet-cpu.yaml \\
        --data ../shared/data/fracture/bone_fracture_roboflow --out runs/distilled
    insightray evaluate fracture --model runs/distilled/model --data DIR --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from insightray.cli.common import err, optimize_app, out
from insightray.errors import ConfigError


@optimize_app.command("fracture")
def optimize_fracture(
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder; the model in OUT/model.")],
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
        str | None, typer.Option("--model", help="Student architecture, e.g. efficientnet_lite0.")
    ] = None,
    img: Annotated[int | None, typer.Option("--img", min=32, help="Student input side.")] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option("--pretrained/--scratch", help="Lite0 student: ImageNet weights or not."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0)] = None,
) -> None:
    """Distil a fracture classifier (or ensemble) into a student trained by `train fracture`'s
    loop: loss = (1 - alpha) * hard loss + alpha * T^2 * KL of the softened logits; the teacher
    runs on each augmented batch. The student takes the teacher's enhancement; OUT/model's card
    has lineage "distilled" (teacher, its SHA-256, alpha, T)."""
    from insightray.training.fracture import config_from_dict, load_fracture_config
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
    if config_file is not None:
        config = load_fracture_config(config_file, **overrides)
    else:
        overrides["image_size"] = img or teacher.input_size
        config = config_from_dict({k: v for k, v in overrides.items() if v is not None})
    if not config.data:
        raise ConfigError("optimize fracture", "no training data given", "pass --data DIR")
    result = distill_fracture(
        config, teacher, settings, log=lambda line: err.print(line, highlight=False)
    )
    out.print(
        f"distilled from {teacher.name}: best validation AUC {result.val.auc:.4f} at step "
        f"{result.best_step} -> {result.card_path}",
        highlight=False,
        soft_wrap=True,
    )

"""``optimize detect``: a faster copy of a detector, written as a new model folder.

One method per call: ``--int8`` (post-training static quantisation of the ONNX export),
``--qat`` (quantisation-aware fine-tuning, written as the same INT8 graph), ``--bf16`` (the
ONNX graph run by OpenVINO in bfloat16), ``--prune R`` (structured channel pruning, then
fine-tuning with the detector trainer) or ``--distill-from TEACHER`` (a ``--student`` trained by
the detector trainer with the teacher's outputs as extra targets; OUT is the run folder, the
model OUT/model_last).

Example:
    insightray optimize detect --int8 --calibration ../shared/data/cxr/tbx11k/images --out runs/int8
    insightray optimize detect --bf16 --out runs/bf16     # processors with AVX-512 BF16 or AMX
    insightray optimize detect --prune 0.3 --data data.yaml --epochs 3 --out runs/pruned30
    insightray optimize detect --distill-from cxr-tbx11k-yolov5s --student runs/pruned30 \
        --data data.yaml --epochs 3 --lr0 0.002 --out runs/distilled30
    insightray optimize detect --qat --data data.yaml --epochs 1 --lr0 0.001 --out runs/qat
    insightray evaluate detect --model runs/pruned30 --data data.yaml --json
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from insightray.cli.common import err, optimize_app, out
from insightray.errors import ConfigError

if TYPE_CHECKING:  # the CLI starts without importing torch
    from insightray.models import ModelCard


@optimize_app.command("detect")
def optimize_detect(
    out_dir: Annotated[Path, typer.Option("--out", help="The new model folder.")],
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Training images: a folder, or a list file of image paths (e.g. a YOLO "
            "train_list.txt). --int8 and --qat calibrate their ranges on them; --prune "
            "re-estimates the batch-norm statistics on them (default for --prune and --qat: "
            "the first --images of --data's train split). Never the images you evaluate on.",
        ),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8", help="Static INT8 quantisation (ONNX Runtime, QDQ).")
    ] = False,
    qat: Annotated[
        bool,
        typer.Option(
            "--qat",
            help="Quantisation-aware fine-tuning on --data for --epochs, then the same INT8 "
            "graph as --int8 (for when --int8 loses too much accuracy).",
        ),
    ] = False,
    bf16: Annotated[
        bool,
        typer.Option("--bf16", help="bfloat16 on OpenVINO (processors with AVX-512 BF16 or AMX)."),
    ] = False,
    prune: Annotated[
        float | None,
        typer.Option(
            "--prune",
            help="Structured channel pruning: the fraction of channels removed, in (0, 1), "
            "e.g. 0.3; then fine-tuning on --data for --epochs.",
        ),
    ] = None,
    distill_from: Annotated[
        str | None,
        typer.Option(
            "--distill-from",
            help="Knowledge distillation from this teacher detector (card, folder or bundled "
            "name) into --student, trained on --data for --epochs.",
        ),
    ] = None,
    student: Annotated[
        str,
        typer.Option(
            "--student",
            help="With --distill-from: a size name (yolov5n, yolov5s: from scratch, teacher's "
            "anchors) or a trained model folder to fine-tune (e.g. an --prune output).",
        ),
    ] = "yolov5n",
    distill_weight: Annotated[
        float, typer.Option("--distill-weight", min=0, help="Weight of the teacher's term.")
    ] = 1.0,
    feature_weight: Annotated[
        float,
        typer.Option("--feature-weight", min=0, help="Neck-feature imitation weight (0: off)."),
    ] = 0.0,
    model: Annotated[
        str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
    ] = None,
    images: Annotated[
        int, typer.Option("--images", min=1, help="Calibration images used (the first N).")
    ] = 64,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: percentile, minmax or entropy.")
    ] = "percentile",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="With --prune, --qat or --distill-from: data.yaml to train on."
        ),
    ] = None,
    epochs: Annotated[
        int,
        typer.Option(
            "--epochs", min=0, help="With --prune, --qat or --distill-from: epochs (0: none)."
        ),
    ] = 3,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Training batch size.")] = 8,
    lr0: Annotated[float, typer.Option("--lr0", min=0, help="Training learning rate.")] = 0.01,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Training seed.")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data loaders.")] = 2,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Make a faster copy of a detector (one method per call); the new folder runs with
    `detect --model OUT`, `evaluate detect --model OUT` and the service (--distill-from:
    OUT/model_last, the last epoch's EMA weights; its card's lineage says "distilled", with the
    teacher and its SHA-256)."""
    if int8 + qat + bf16 + (prune is not None) + (distill_from is not None) != 1:
        raise ConfigError(
            "optimize detect",
            "choose exactly one method",
            "pass --int8, --qat, --bf16, --prune R or --distill-from TEACHER",
        )
    if distill_from is not None or qat or prune is not None:  # the methods that train
        from insightray.training.detection.prune import FineTune

        tuning = FineTune(
            "" if data is None else str(data.resolve()), epochs, lr0, batch, workers, device, seed
        )
    if distill_from is not None:
        from insightray.training.detection.distill import student_config
        from insightray.training.detection.prune import fine_tune_detector

        at_least_one = dataclasses.replace(tuning, epochs=max(epochs, 1))
        config = student_config(student, distill_from, at_least_one, out_dir, distill_weight,
                                feature_weight)  # fmt: skip
        card_path = fine_tune_detector(config, err)
        out.print(f"distilled from {config.teacher} into {student} -> {card_path}",
                  highlight=False, soft_wrap=True)  # fmt: skip
        return
    if qat or prune is not None:
        chosen = _training_images(calibration, data, images)
    if qat:
        from insightray.training.detection.qat import qat_detector

        report_copy(out_dir, qat_detector(model, out_dir, tuning, chosen, method, err))
        return
    if prune is not None:
        from insightray.engine.prune import check_ratio
        from insightray.training.detection.prune import prune_detector

        check_ratio(prune)
        if not chosen:
            err.print("warning: no --calibration or --data: the batch-norm statistics stay "
                      "the parent's, which pruning has made wrong", highlight=False)  # fmt: skip
        card = prune_detector(model, prune, out_dir, tuning, err, chosen)
        settings = card.lineage.settings
        out.print(
            f"{out_dir} ({card.version}): {settings['params_before']} -> "
            f"{settings['params_after']} parameters; parent {card.lineage.parent}",
            highlight=False,
            soft_wrap=True,
        )
        return
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
    report_copy(out_dir, card)


def _training_images(calibration: Path | None, data: Path | None, count: int) -> list[Path]:
    """The first ``count`` images of ``--calibration``, else of ``--data``'s train split."""
    from insightray.engine.quantize import calibration_images

    if calibration is not None:
        return calibration_images(calibration, count)
    if data is None:
        return []
    from insightray.training.detection import load_data_split

    return [Path(r.image_path) for r in load_data_split(str(data), "train").records[:count]]


def report_copy(out_dir: Path, card: ModelCard) -> None:
    """Print where an optimised copy went and what it came from."""
    out.print(
        f"{out_dir} ({card.weights_file}, {card.version}); parent {card.lineage.parent}",
        highlight=False,
        soft_wrap=True,
    )

"""Fracture verbs: ``classify fracture``, ``train fracture`` and ``evaluate fracture``.

``--model NAME_OR_PATH`` names a model card ``.json``, a folder holding ``card.json`` (such
as a training run's ``model/`` folder) or a bundled model name; without it the bundled
default fracture model is used. Torch and training imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from insightray.cli.common import (
    classify_app,
    each_file,
    err,
    evaluate_app,
    finish,
    out,
    print_warnings,
    train_app,
    unique_path,
)
from insightray.cli.monitor import ProfileOption, training_profile
from insightray.errors import ConfigError, InsightRayError

if TYPE_CHECKING:
    from insightray.engine.classification import FractureResult
    from insightray.training.fracture.config import FractureTrainConfig

ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Model card .json, folder with card.json, or bundled name."),
]


@classify_app.command("fracture")
def classify_fracture(
    files: Annotated[list[Path], typer.Argument(help="Images (DICOM/PNG/JPEG) or folders.")],
    model: ModelOption = None,
    cam_dir: Annotated[
        Path | None, typer.Option("--cam", help="Write Grad-CAM overlay PNGs here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
    sr_dir: Annotated[
        Path | None,
        typer.Option(
            "--sr", help="Write a DICOM SR per DICOM input here (needs insightray[pacs])."
        ),
    ] = None,
) -> None:
    """Classify bone radiographs as fractured or not, at the model card's operating point.

    Per image: the fracture probability, the label at the card's threshold, the model name
    and version, the out-of-distribution guard's "warnings" and "ood_score", and with --cam
    the path of a Grad-CAM heatmap overlaid on the image. With --sr, a DICOM Structured Report
    per DICOM input (TID 1500, one image-level finding).
    """
    from insightray.engine import load_predictor
    from insightray.explain import gradcam_heatmap, save_overlay
    from insightray.imaging import read_image
    from insightray.monitoring.guard import OodGuard

    predictor = load_predictor(model, task="classification")
    guard = OodGuard.for_model(predictor, model, "classification")
    card = predictor.card
    taken: set[Path] = set()

    def work(path: Path) -> tuple[FractureResult, Path | None]:
        image = read_image(path)
        pixels = image.pixels

        def run() -> list[FractureResult]:
            return predictor.predict_arrays([pixels])

        result = (run() if guard is None else guard.run(run, [image]))[0]
        if sr_dir is not None:
            from insightray.pacs.sr import write_sr

            write_sr(path, sr_dir, fracture=(result, card))
        heatmap_path = None
        if cam_dir is not None:
            heatmap_path = unique_path(cam_dir / f"{path.stem}_gradcam.png", taken)
            taken.add(heatmap_path)
            save_overlay(pixels, gradcam_heatmap(predictor, pixels), heatmap_path)
        return result, heatmap_path

    failures = total = 0
    rows: list[dict[str, Any]] = []
    for path, outcome in each_file(files, label="Classifying", work=work):
        total += 1
        if isinstance(outcome, InsightRayError):
            failures += 1
            if as_json:
                print(json.dumps({"image": str(path), "error": str(outcome)}))
            continue
        result, heatmap_path = outcome
        record = {
            "image": str(path),
            **result.to_dict(),
            "model": {"name": card.name, "version": card.version},
            "heatmap": None if heatmap_path is None else str(heatmap_path),
        }
        if as_json:
            print(json.dumps(record))
        else:
            rows.append(record)
    if rows:
        _print_rows(rows)
    finish(failures, total)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    first = rows[0]
    title = f"fracture ({first['model']['name']} {first['model']['version']})"
    table = Table(title=title, title_justify="left")
    for column in ("image", "probability", "label", "threshold", "heatmap"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["image"],
            f"{row['probability']:.3f}",
            row["label"],
            f"{row['threshold']:.3f}",
            row["heatmap"] or "-",
        )
    out.print(table)
    for row in rows:
        print_warnings(tuple(f"{row['image']}: {text}" for text in row["warnings"]))


@train_app.command("fracture")
def train_fracture_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder with images.csv, class folders, or CSV.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Training config YAML (configs/fracture/).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="e.g. efficientnet_lite0.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Fixed optimiser steps.")
    ] = None,
    img: Annotated[int | None, typer.Option("--img", min=32, help="Input side.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=2)] = None,
    loss: Annotated[
        str | None, typer.Option("--loss", help="bce, weighted_bce, focal or smooth_bce.")
    ] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option("--pretrained/--scratch", help="Lite0: packaged ImageNet weights or not."),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0)] = None,
    debug_images: Annotated[
        int | None,
        typer.Option("--debug-images", min=0, help="Save each preprocessing step of N images."),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder.")] = None,
    init: Annotated[
        Path | None,
        typer.Option("--init", help="Start from weights: a file, or a `pretrain` output folder."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            min=2,
            help="Group-aware K-fold cross-validation of the non-test groups: per-fold and "
            "mean (95 % CI) AUC and ECE, out-of-fold predictions in OUT/oof.csv.",
        ),
    ] = None,
    profile: ProfileOption = True,
) -> None:
    """Train a fracture classifier; writes metrics, reliability diagrams and model/card.json
    with the model's reference profile beside it (monitoring: profile.json, unless
    --no-profile; with --folds K: one model per fold under OUT/fold<k>/, oof.csv and
    folds.json, no profiles)."""
    from insightray.training.fracture import train_fracture
    from insightray.training.fracture.folds import train_fracture_folds

    overrides: dict[str, Any] = {
        "data": None if data is None else str(data.resolve()),
        "model": model,
        "epochs": epochs,
        "max_steps": steps,
        "image_size": img,
        "batch_size": batch,
        "loss": loss,
        "pretrained": pretrained,
        "device": device,
        "seed": seed,
        "debug_images": debug_images,
        "out": None if out_dir is None else str(out_dir),
        "init_weights": None if init is None else str(_init_weights(init)),
    }
    config = fracture_config(config_file, overrides, "train fracture")
    if folds is not None:
        cv = train_fracture_folds(config, folds, log=lambda line: err.print(line, highlight=False))
        for row in cv.per_fold:
            out.print(
                f"fold {row['fold']}: {row['images']} images, AUC {row['auc']:.4f}, ECE "
                f"{row['ece_uncalibrated']:.4f} -> {row['ece_calibrated']:.4f} calibrated",
                highlight=False,
            )
        for name, value in cv.summary.items():
            out.print(
                f"{name}: mean {value['mean']:.4f} [95 % CI {value['ci_low']:.4f}, "
                f"{value['ci_high']:.4f}] over {folds} folds",
                highlight=False,
            )
        out.print(f"out-of-fold predictions: {cv.oof_path}", highlight=False, soft_wrap=True)
        return
    result = train_fracture(config, log=lambda line: err.print(line, highlight=False))
    test = "" if result.test is None else f", test AUC {result.test.auc:.4f}"
    out.print(
        f"best validation AUC {result.val.auc:.4f} at step {result.best_step}{test} -> "
        f"{result.card_path}",
        highlight=False,
        soft_wrap=True,
    )
    if profile:
        training_profile(
            result.card_path,
            list(result.train_images),
            list(result.train_groups),
            f"{config.data}, train split",
        )


@evaluate_app.command("fracture")
def evaluate_fracture(
    data: Annotated[
        Path, typer.Option("--data", help="Folder with images/ and images.csv (image,fractured).")
    ],
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    reliability: Annotated[
        Path | None,
        typer.Option(
            "--reliability",
            help="Write a reliability diagram PNG (and <stem>_uncalibrated.png for a "
            "temperature-scaled model).",
        ),
    ] = None,
    boxes: Annotated[
        Path | None,
        typer.Option(
            "--boxes",
            help="YOLO label folder (<image stem>.txt, e.g. DATA/labels): adds the Grad-CAM "
            "pointing game.",
        ),
    ] = None,
    box_class: Annotated[
        str, typer.Option("--box-class", help="Box class name in the data.yaml beside --boxes.")
    ] = "fracture",
    resamples: Annotated[int, typer.Option("--resamples", min=100, help="Bootstrap draws.")] = 2000,
) -> None:
    """ROC AUC (95 % bootstrap CI), sensitivity/specificity at the card's threshold, ECE and NLL
    before/after the card's temperature, and with fracture boxes the Grad-CAM pointing game
    (share of fractured images whose heatmap peak lies in a box, 95 % CI, chance rate)."""
    from insightray.engine import load_predictor
    from insightray.training.fracture import evaluate_folder

    predictor = load_predictor(model, task="classification")
    scores = evaluate_folder(
        predictor,
        data,
        resamples=resamples,
        reliability_png=reliability,
        boxes=boxes,
        box_class=box_class,
    )
    card = predictor.card
    record = {
        "model": {"name": card.name, "version": card.version},
        "data": str(data),
        **scores.to_dict(),
    }
    if as_json:
        print(json.dumps(record))
        return
    low, high = record["auc_ci"]
    calibration = record["calibration"]
    table = Table(title=f"{card.name} {card.version} on {data}", title_justify="left")
    table.add_column("metric")
    table.add_column("value")
    table.add_row("images (fractured)", f"{record['images']} ({record['positives']})")
    table.add_row("ROC AUC [95 % CI]", f"{record['auc']:.4f} [{low:.4f}, {high:.4f}]")
    table.add_row("threshold", f"{record['threshold']:.4f}")
    table.add_row("sensitivity", f"{record['sensitivity']:.4f}")
    table.add_row("specificity", f"{record['specificity']:.4f}")
    table.add_row("ECE", f"{record['ece']:.4f}")
    table.add_row("temperature", f"{calibration['temperature']:.4f}")
    table.add_row(
        "ECE / NLL uncalibrated",
        f"{calibration['ece_before']:.4f} / {calibration['nll_before']:.4f}",
    )
    table.add_row(
        "ECE / NLL calibrated", f"{calibration['ece_after']:.4f} / {calibration['nll_after']:.4f}"
    )
    pointing = record["pointing"]
    if pointing is not None:
        p_low, p_high = pointing["rate_ci"]
        table.add_row(
            "Grad-CAM pointing [95 % CI]",
            f"{pointing['hits']}/{pointing['images']} = {pointing['rate']:.4f} "
            f"[{p_low:.4f}, {p_high:.4f}] (chance {pointing['chance']:.4f})",
        )
    out.print(table)


def _init_weights(path: Path) -> Path:
    """A weights file, or the backbone a ``pretrain`` folder's card names."""
    card = path / "card.json"
    if path.is_dir() and card.is_file():
        return path / str(json.loads(card.read_text(encoding="utf-8")).get("weights_file", ""))
    return path


def fracture_config(
    config_file: Path | None, overrides: dict[str, Any], verb: str
) -> FractureTrainConfig:
    """A fracture training config: the YAML file with the given options over it, or the options
    alone (those left unset take the defaults).

    Raises:
        ConfigError: No training data was given either way.
    """
    from insightray.training.fracture import config_from_dict, load_fracture_config

    if config_file is not None:
        config = load_fracture_config(config_file, **overrides)
    else:
        config = config_from_dict({k: v for k, v in overrides.items() if v is not None})
    if not config.data:
        raise ConfigError(verb, "no training data given", "pass --data DIR")
    return config

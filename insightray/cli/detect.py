"""Detection verbs: ``detect``, ``train detect``, ``evaluate detect`` and ``export detect``.

A model is named by ``--model NAME_OR_PATH``: a model card ``.json``, a folder holding
``card.json`` (such as a training run's ``model/`` folder), an ``.onnx`` file with its
``<stem>.card.json`` beside it (as ``export detect`` writes), or the name of a model bundled in
the package folder ``insightray/weights/<name>/``. Without ``--model`` the default bundled
detector is used. Torch, ONNX and training imports happen inside the commands, so the other
verbs start fast.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from insightray.cli.common import (
    app,
    each_file,
    err,
    evaluate_app,
    export_app,
    finish,
    out,
    print_warnings,
    train_app,
    unique_path,
)
from insightray.cli.monitor import ProfileOption, training_profile
from insightray.errors import ConfigError, InsightRayError

if TYPE_CHECKING:
    from insightray.engine import DetectionResult
    from insightray.imaging import LoadedImage


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model card .json, folder with card.json, .onnx export, or bundled model name.",
    ),
]
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto (ONNX weights on ONNX Runtime, else PyTorch), torch, onnx, openvino, or "
        "openvino-bf16 (bfloat16, on processors with AVX-512 BF16 or AMX).",
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
TTAOption = Annotated[
    bool,
    typer.Option(
        "--tta",
        help="Test-time augmentation: also run each image mirrored and at 1.25x (or as the "
        "card's tta section says) and fuse the boxes with Weighted Boxes Fusion.",
    ),
]
SROption = Annotated[
    Path | None,
    typer.Option("--sr", help="Write a DICOM SR per DICOM input here (needs insightray[pacs])."),
]
GSPSOption = Annotated[
    Path | None,
    typer.Option(
        "--gsps",
        help="Write a Grayscale Softcopy Presentation State per DICOM input here, so plain "
        "viewers draw the boxes (needs insightray[pacs]).",
    ),
]


@app.command("detect")
def detect(
    files: Annotated[list[Path], typer.Argument(help="Images or folders (recursive).")],
    model: ModelOption = None,
    backend: BackendOption = "auto",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write overlay PNGs and JSON here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
    conf: Annotated[
        float | None, typer.Option("--conf", help="Confidence threshold (default: card's).")
    ] = None,
    iou: Annotated[float | None, typer.Option("--iou", help="NMS IoU (default: card's).")] = None,
    device: DeviceOption = "cpu",
    sr_dir: SROption = None,
    gsps_dir: GSPSOption = None,
    tta: TTAOption = False,
    cam_dir: Annotated[
        Path | None,
        typer.Option("--cam", help="Write EigenCAM overlay PNGs here (PyTorch backend)."),
    ] = None,
) -> None:
    """Detect findings in radiographs: boxes in original pixels (and mm when known).

    With --cam, an EigenCAM heatmap of where the detector's features concentrate is written
    over each image (``<name>_eigencam.png``; its path is "heatmap" in --json).

    With --sr, each DICOM input's boxes are also written as a DICOM Structured Report (TID 1500
    Measurement Report, one planar ROI per box) named after the source SOP Instance UID.
    With --gsps, also as a presentation state (``<SOP Instance UID>.pr.dcm``) plain viewers draw.

    Each result carries the out-of-distribution guard's "warnings" and "ood_score" (when the
    model has a reference profile): an MR slice or a knee radiograph is named, not answered
    with an empty list as if no finding were there.
    """
    from insightray.engine import load_predictor, write_overlay
    from insightray.imaging import read_image
    from insightray.monitoring.guard import OodGuard

    if sr_dir is not None:
        from insightray.pacs.sr import write_sr
    if gsps_dir is not None:
        from insightray.pacs.gsps import write_gsps
    if cam_dir is not None:
        from insightray.explain import eigencam_heatmap, save_overlay

        backend = "torch" if backend == "auto" else backend  # ONNX exposes no activations

    predictor = load_predictor(
        model,
        task="detection",
        backend=backend,
        device=device,
        conf_threshold=conf,
        iou_threshold=iou,
        tta=True if tta else None,
    )

    guard = OodGuard.for_model(predictor, model, "detection")

    def work(path: Path) -> tuple[LoadedImage, DetectionResult]:
        image = read_image(path)

        def run() -> list[DetectionResult]:
            return predictor.predict_images([image], [str(path)])

        result = (run() if guard is None else guard.run(run, [image]))[0]
        if sr_dir is not None:
            write_sr(path, sr_dir, detection=(result, predictor.card))
        if gsps_dir is not None:
            write_gsps(path, gsps_dir, result, predictor.card)
        return image, result

    failures = total = 0
    taken: set[Path] = set()
    for path, outcome in each_file(files, label="Detecting", work=work):
        total += 1
        if isinstance(outcome, InsightRayError):
            failures += 1
            if as_json:
                print(json.dumps({"image": str(path), "error": str(outcome)}))
            continue
        image, result = outcome
        record = result.to_dict()
        if cam_dir is not None:
            heatmap = unique_path(cam_dir / f"{path.stem}_eigencam.png", taken)
            taken.add(heatmap)
            save_overlay(image.pixels, eigencam_heatmap(predictor, image.pixels), heatmap)
            record["heatmap"] = str(heatmap)
        if out_dir is not None:
            target = unique_path(out_dir / f"{path.stem}.png", taken)
            taken.add(target)
            write_overlay(image.pixels, result.detections, target)
            target.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        if as_json:
            print(json.dumps(record))
        else:
            _print_detections(result)
    finish(failures, total)


def _print_detections(result: DetectionResult) -> None:
    title = f"{result.path}: {len(result.detections)} findings ({result.model_name} " + (
        f"{result.model_version})"
    )
    table = Table(title=title, title_justify="left")
    for column in ("finding", "score", "x1 y1 x2 y2 (px)", "box (mm)"):
        table.add_column(column)
    for found in result.detections:
        box_mm = " ".join(f"{v:.1f}" for v in found.box_mm) if found.box_mm else "-"
        box_px = " ".join(f"{v:.0f}" for v in found.box_px)
        table.add_row(found.class_name, f"{found.score:.3f}", box_px, box_mm)
    out.print(table)
    print_warnings(result.warnings)


@train_app.command("detect")
def train_detect(
    data: Annotated[
        Path | None, typer.Option("--data", help="data.yaml (YOLO, or format: vinbigdata).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Training config YAML.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="e.g. yolov5s.")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="Fine-tune a trained detector (model folder, card or bundled name; a pruned "
            "one keeps its channel widths), or start from an `insightray pretrain` backbone "
            "folder of the same architecture, instead of random weights.",
        ),
    ] = None,
    distill_from: Annotated[
        str | None,
        typer.Option(
            "--distill-from",
            help="Knowledge distillation: a trained detector of the same classes whose outputs "
            "on each batch are extra targets (see `optimize detect --distill-from`).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    img: Annotated[int | None, typer.Option("--img", help="Image side, multiple of 32.")] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1)] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=0)] = None,
    cache_images: Annotated[
        bool | None,
        typer.Option(
            "--cache-images/--no-cache-images",
            help="Keep decoded training images in memory (4 bytes per pixel).",
        ),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", min=0, help="Minutes; fewer epochs if they would not fit."),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    vinbigdata_csv: Annotated[
        Path | None, typer.Option("--vinbigdata-csv", help="VinBigData CSV instead of --data.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="VinBigData image folder.")
    ] = None,
    orig_dims: Annotated[
        Path | None, typer.Option("--orig-dims", help="VinBigData original sizes CSV (PNGs).")
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option("--sampler", help="none, or inverse_frequency (over-sample rare classes)."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option(
            "--folds",
            min=2,
            help="K-fold cross-validation over every image of --data (train+val+test lists): "
            "per-fold and mean +- 95 % CI of each metric, out-of-fold boxes kept.",
        ),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option("--fold", min=0, help="With --folds: train only this fold (no summary)."),
    ] = None,
    profile: ProfileOption = True,
) -> None:
    """Train a YOLOv5 detector; writes checkpoints, metrics, plots and model/card.json.

    With --folds K, every labelled image of --data is dealt into K folds (stratified by the
    rarest class of each image); fold k trains on the others into OUT/fold<k>/run and its
    last-epoch EMA weights (run/model_last, no epoch chosen on the held-out fold) are scored
    on fold k. OUT/cv_summary.json holds per-fold metrics, each metric's mean with its 95 %
    t-interval over folds, and the pooled out-of-fold metrics with bootstrap intervals;
    OUT/fold<k>/oof.json the held-out boxes; OUT/ensemble/card.json the fold ensemble.

    Beside model/card.json goes the model's reference profile (monitoring: profile.json, from
    at most 300 training images, seeded; rank 0 only under torchrun), unless --no-profile
    (folds get none)."""
    from insightray.training.detection import (
        TrainConfig,
        config_from_dict,
        is_main_process,
        load_data_split,
        load_train_config,
        read_run_config,
        train_detector,
    )

    overrides: dict[str, Any] = {
        "model": model,
        "init": init,
        "teacher": distill_from,
        "epochs": epochs,
        "image_size": img,
        "batch_size": batch,
        "device": device,
        "workers": workers,
        "cache_images": cache_images,
        "time_limit_min": time_limit,
        "out": None if out_dir is None else str(out_dir),
        "sampler": sampler,
    }
    if (folds is not None or fold is not None) and resume:
        raise ConfigError("--folds", "cross-validation runs cannot be resumed", "drop --resume")
    if fold is not None and (folds is None or fold >= folds):
        raise ConfigError(f"--fold {fold}", "needs --folds K with K above it", "add --folds")
    if resume:
        run = out_dir or Path(TrainConfig().out)
        kept = {key: overrides[key] for key in ("epochs", "device", "workers")}
        saved = read_run_config(run)
        config = dataclasses.replace(saved, **{k: v for k, v in kept.items() if v is not None})
        result = train_detector(config, resume=True, console=err)
    else:
        if vinbigdata_csv is not None and data is not None:
            raise ConfigError("--data", "give --data or --vinbigdata-csv, not both", "drop one")
        if vinbigdata_csv is not None:
            if images is None:
                raise ConfigError("--vinbigdata-csv", "--images is required with it", "add it")
            spec: dict[str, Any] = {
                "format": "vinbigdata",
                "csv": str(vinbigdata_csv.resolve()),
                "images": str(images.resolve()),
            }
            if orig_dims is not None:
                spec["orig_dims"] = str(orig_dims.resolve())
            overrides["data"] = spec
        elif data is not None:
            overrides["data"] = str(data.resolve())
        if config_file is not None:
            config = load_train_config(config_file, **overrides)
        else:
            config = config_from_dict({k: v for k, v in overrides.items() if v is not None})
        if not config.data:
            raise ConfigError("train detect", "no training data given", "pass --data DATA.yaml")
        if folds is not None:
            _cross_validate(config, folds, fold)
            return
        result = train_detector(config, console=err)
    if is_main_process():  # under torchrun, rank 0 alone wrote the output
        out.print(
            f"best epoch {result.best_epoch + 1} (fitness {result.best_fitness:.4f}) -> "
            f"{result.card_path}",
            highlight=False,
            soft_wrap=True,
        )
        if profile:
            train = load_data_split(config.data, "train")
            paths = [record.image_path for record in train.records]
            training_profile(result.card_path, paths, None, f"{_data_name(config.data)}, train")


def _data_name(data: Any) -> str:
    """How a run's data spec reads in its profile: the YAML's path, or the CSV's."""
    return str(data["csv"]) if isinstance(data, dict) else str(data)


def _cross_validate(config: Any, k: int, only: int | None) -> None:
    from insightray.engine.ensemble import write_ensemble_card
    from insightray.training.detection.folds import prepare_folds, summarize_folds, train_fold

    if not isinstance(config.data, str):
        raise ConfigError("--folds", "cross-validation needs a YOLO data.yaml", "pass --data")
    root = Path(config.out)
    chosen = prepare_folds(config.data, k, root, seed=config.seed)
    for item in chosen if only is None else [chosen[only]]:
        card = train_fold(config, item, console=err)
        out.print(f"fold {item.index}: {card}", highlight=False, soft_wrap=True)
    if only is not None:
        return
    summary = summarize_folds(chosen)
    (root / "cv_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_ensemble_card(
        [f.run / "model_last" for f in chosen], root / "ensemble", name=f"{config.model}-{k}fold"
    )
    table = Table(title=f"{k}-fold cross-validation ({root})", title_justify="left")
    for column in ("metric", "mean", "95% CI over folds", "per fold"):
        table.add_column(column)
    for key, row in summary["mean"].items():
        folds_text = " ".join(_fmt(f) for f in _per_fold(summary["per_fold"], key))
        table.add_row(key, _fmt(row["mean"]), _fmt_ci(row["ci95"]), folds_text)
    out.print(table)
    out.print(f"{root / 'cv_summary.json'}; fold ensemble: {root / 'ensemble'}", highlight=False)


def _per_fold(per_fold: list[dict[str, Any]], key: str) -> list[float | None]:
    if "/" not in key:
        return [row[key] for row in per_fold]
    metric, name = key.split("/", 1)
    return [next(c[metric] for c in row["per_class"] if c["name"] == name) for row in per_fold]


@evaluate_app.command("detect")
def evaluate_detect(
    data: Annotated[Path, typer.Option("--data", help="data.yaml with the split.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "val",
    model: ModelOption = None,
    backend: BackendOption = "auto",
    img: Annotated[int | None, typer.Option("--img", help="Input side (default: card's).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 8,
    workers: Annotated[int, typer.Option("--workers", min=0)] = 0,
    device: DeviceOption = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    tta: TTAOption = False,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Bootstrap resamples over images for the 95 % CIs (0: none)."
        ),
    ] = 1000,
) -> None:
    """Compute mAP@0.4, mAP@0.5, mAP@0.5:0.95, per-class AP, precision and recall, with
    percentile-bootstrap 95 % intervals over images of mAP@0.5, mAP@0.5:0.95 and each
    class's AP50 (in the JSON under "ci95")."""
    from insightray.engine import load_predictor
    from insightray.training.detection import collect_detections, load_data_split
    from insightray.training.metrics.detection_ci import bootstrap_detection

    dataset = load_data_split(str(data), split)
    options: dict[str, Any] = {"image_size": img} if img is not None else {}
    predictor = load_predictor(
        model, task="detection", backend=backend, device=device, tta=tta or None, **options
    )
    evaluator = collect_detections(predictor, dataset, batch_size=batch, workers=workers)
    metrics = evaluator.compute()
    intervals = bootstrap_detection(evaluator, bootstrap) if bootstrap and len(dataset) else None
    card = predictor.card
    record = {
        "model": {"name": card.name, "version": card.version},
        "data": str(data),
        "split": split,
        "image_size": predictor.image_size[0],
        "tta": None if predictor.tta is None else predictor.tta.to_dict(),
        "members": len(predictor.members),
        **metrics.to_dict(),
        "ci95": None if intervals is None else intervals.to_dict(),
    }
    if as_json:
        print(json.dumps(record))
        return
    table = Table(title=f"{card.name} {card.version} on {data} ({split})", title_justify="left")
    ci = record["ci95"] or {"map50": None, "map50_95": None, "per_class_ap50": {}}
    for column in ("class", "images/boxes", "AP40", "AP50", "AP50 95% CI", "AP50:95"):
        table.add_column(column)
    for row in record["per_class"]:
        values = [
            _fmt(row["ap40"]),
            _fmt(row["ap50"]),
            _fmt_ci(ci["per_class_ap50"].get(row["name"])),
            _fmt(row["ap50_95"]),
        ]
        table.add_row(row["name"], str(row["num_gt"]), *values)
    summary = [_fmt(record["map40"]), _fmt(record["map50"]), _fmt_ci(ci["map50"])]
    table.add_row("all", f"{record['images']} images", *summary, _fmt(record["map50_95"]))
    out.print(table)
    out.print(
        f"mAP@0.5:0.95 95% CI {_fmt_ci(ci['map50_95'])} ({bootstrap} bootstrap resamples "
        "over images)"
    )
    out.print(f"precision {_fmt(record['precision'])}  recall {_fmt(record['recall'])}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_ci(interval: list[float] | None) -> str:
    return "-" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


@export_app.command("detect")
def export_detect(
    out_file: Annotated[Path, typer.Option("--out", help="The .onnx file to write.")],
    model: ModelOption = None,
    img: Annotated[int | None, typer.Option("--img", help="Input side (default: card's).")] = None,
    opset: Annotated[int, typer.Option("--opset")] = 17,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Write the INT8 (ONNX Runtime static QDQ) graph `optimize detect --int8` makes; "
            "check it with `evaluate detect`, not element-wise.",
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="With --int8: images to calibrate on (folder or list)."),
    ] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Calibration images used.")] = 64,
) -> None:
    """Export a detector to ONNX, check it against PyTorch, and write its card beside it."""
    from insightray.engine import export_onnx, load_model, verify_onnx
    from insightray.models import load_card, save_card
    from insightray.models.catalog import default_model, resolve_card, sha256_file

    if out_file.suffix != ".onnx":
        raise ConfigError(str(out_file), "the file name must end in .onnx", "rename it")
    card_file = out_file.with_name(out_file.stem + ".card.json")
    if int8:
        _export_int8(model, out_file, card_file, calibration, images, img)
        return
    card_path = resolve_card(model, default=default_model("detection"))
    card = load_card(card_path)
    detector = load_model(card, card_path.parent / str(card.weights_file))
    size = (img, img) if img else card.input_size
    export_onnx(detector, out_file, size, opset=opset)
    difference = verify_onnx(detector, out_file, size)
    exported = dataclasses.replace(
        card, input_size=size, weights_file=out_file.name, weights_sha256=sha256_file(out_file)
    )
    save_card(exported, card_file)
    out.print(
        f"{out_file} (+ {card_file.name}); ONNX Runtime matches PyTorch to {difference:.2g}",
        highlight=False,
        soft_wrap=True,
    )


def _export_int8(
    model: str | None,
    out_file: Path,
    card_file: Path,
    calibration: Path | None,
    images: int,
    img: int | None,
) -> None:
    from insightray.engine.quantize import calibration_images, quantize_detector

    if calibration is None:
        raise ConfigError("export detect --int8", "no calibration images", "pass --calibration")
    if img is not None:
        raise ConfigError(
            "export detect --int8", "the INT8 graph keeps the model's input size", "drop --img"
        )
    chosen = calibration_images(calibration, images)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    card = quantize_detector(
        model, chosen, out_file.parent, description=f"{len(chosen)} images from {calibration}",
        weights_name=out_file.name, card_name=card_file.name,
    )  # fmt: skip
    out.print(
        f"{out_file} (+ {card_file.name}); INT8 copy of {card.lineage.parent}: check it with "
        f"`insightray evaluate detect --model {out_file}`",
        highlight=False,
        soft_wrap=True,
    )

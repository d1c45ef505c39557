"""Structured pruning of the bundled detector at 30 % and 50 % of channels, fine-tuned on a CPU.

In one run, on TBX11K: the bundled detector (``cxr-tbx11k-yolov5s``) untouched; the same
fine-tuned for the CPU budget (the fair reference: what the budget alone does to it); and
``optimize detect --prune 0.3`` and ``--prune 0.5`` (Torch-Pruning, group L2 magnitude), each
fine-tuned for the same budget: the first N images of train_list.txt for E epochs, batch 8,
one optimiser step per batch, through our trainer, last EMA weights kept. Optionally the 30 %
model quantised to INT8 (``optimize detect --int8``, 64 train images). Each row: parameters,
GFLOPs at 512 px, CPU latency at batch 1, 2 threads, 512 px (network forward, PyTorch and
ONNX Runtime, median of interleaved runs), and mAP@0.5 on val_list.txt (100 images, never
trained on) with its percentile-bootstrap 95 % interval over images and the paired bootstrap
interval of its difference from the fine-tuned parent.

Before fine-tuning, the pruned networks' batch-norm statistics are re-estimated on the first
``--bn-images`` train_list images (no labels, no weight change). With ``--epochs 0`` nothing is
fine-tuned and the untouched parent is the reference.

This is a CPU-scale budget (minutes on 2 shared cores), far below a real fine-tune: it shows
the speed gained and how much accuracy a short recovery keeps, not the accuracy a pruned model
can reach with a GPU-scale fine-tune.

Usage:
    python benchmarks/bench_pruning.py [--train-images 64] [--epochs 1] [--bn-images 64]
        [--ratios 0.3 0.5] [--runs 20] [--int8] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path[:0] = [str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
from bench_cpu_variants import latency_ms  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.engine import DetectionPredictor, load_model, load_predictor  # noqa: E402
from insightray.engine.quantize import quantize_detector  # noqa: E402
from insightray.models import load_card  # noqa: E402
from insightray.models.catalog import default_model, resolve_card  # noqa: E402
from insightray.models.detection.yolo import count_parameters, gflops  # noqa: E402
from insightray.training.detection import collect_detections, load_data_split  # noqa: E402
from insightray.training.detection.prune import (  # noqa: E402
    FineTune,
    fine_tune_config,
    fine_tune_detector,
    prune_detector,
)
from insightray.training.metrics.detection_ci import (  # noqa: E402
    bootstrap_detection,
    bootstrap_detection_difference,
)

TBX = data_root() / "cxr" / "tbx11k"
NAMES = "names:\n  0: ActiveTuberculosis\n  1: ObsoletePulmonaryTuberculosis\n"


def fine_tune_data(folder: Path, train_images: int) -> Path:
    """A data.yaml: the first N train_list images, and 16 val images for the trainer's check."""
    lists = {"train": train_images, "val": 16}
    for split, count in lists.items():
        lines = (TBX / f"{split}_list.txt").read_text().split()[:count]
        (folder / f"{split}.txt").write_text("".join(f"{TBX / line}\n" for line in lines))
    data = folder / "data.yaml"
    data.write_text(f"path: .\ntrain: train.txt\nval: val.txt\nnc: 2\n{NAMES}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="0: no fine-tuning at all.")
    parser.add_argument(
        "--bn-images",
        type=int,
        default=64,
        help="train_list images the pruned batch norms are re-estimated on.",
    )
    parser.add_argument("--lr0", type=float, default=0.01)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--int8", action="store_true", help="Also the 30 %% model in INT8.")
    parser.add_argument("--work", help="Keep the models here; a rerun reuses those present.")
    args = parser.parse_args()
    torch.set_num_threads(2)
    parent_path = resolve_card(None, default=default_model("detection"))
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(args.work or scratch_name)
        scratch.mkdir(parents=True, exist_ok=True)
        tuning = FineTune(str(fine_tune_data(scratch, args.train_images)), args.epochs,
                          args.lr0, batch_size=8, workers=1, device="cpu")  # fmt: skip
        folders: dict[str, Path] = {"parent (untouched)": parent_path.parent}
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        bn_images = [
            TBX / p for p in (TBX / "train_list.txt").read_text().split()[: args.bn_images]
        ]
        if args.epochs > 0:
            folders["parent fine-tuned"] = scratch / "reference" / "model_last"
        if args.epochs > 0 and not (folders["parent fine-tuned"] / "card.json").is_file():
            reference = fine_tune_config(tuning, parent_path.parent, load_card(parent_path),
                                         scratch / "reference")  # fmt: skip
            fine_tune_detector(reference)
            seconds["parent fine-tuned"] = time.perf_counter() - started
        for ratio in args.ratios:
            name = f"pruned {round(ratio * 100)} %"
            folders[name] = scratch / f"pruned{round(ratio * 100)}"
            if not (folders[name] / "card.json").is_file():
                started = time.perf_counter()
                prune_detector(None, ratio, folders[name], tuning, None, bn_images)
                seconds[name] = time.perf_counter() - started
        if args.int8 and not (scratch / "int8" / "card.json").is_file():
            train = (TBX / "train_list.txt").read_text().split()[:64]
            quantize_detector(folders["pruned 30 %"], [TBX / p for p in train],
                              scratch / "int8", "percentile")  # fmt: skip
        report(folders, seconds, scratch / "int8" if args.int8 else None, args)


def report(
    folders: dict[str, Path], seconds: dict[str, float], int8: Path | None, args: argparse.Namespace
) -> None:
    """Time, count and evaluate every model; print the table."""
    sizes: dict[str, tuple[int, float]] = {}
    predictors: dict[str, DetectionPredictor] = {}
    for name, folder in folders.items():
        card = load_card(folder / "card.json")
        assert card.weights_file is not None
        network = load_model(card, folder / card.weights_file)
        sizes[name] = (count_parameters(network), gflops(network, 512))
        for backend in ("torch", "onnx"):
            predictors[f"{name}|{backend}"] = load_predictor(folder, task="detection",
                                                             backend=backend)  # fmt: skip
    if int8 is not None:
        predictors["pruned 30 % INT8|onnx"] = load_predictor(int8, task="detection")
    speed = latency_ms(predictors, args.runs)
    val = load_data_split(str(TBX / "data.yaml"), "val")
    evaluators = {}
    for key, predictor in predictors.items():
        if key.endswith("|onnx") and "INT8" not in key:
            continue  # same network as its torch row
        evaluators[key.split("|")[0]] = collect_detections(predictor, val)
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    wanted = [f for f in flags.split() if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2"))]
    print(f"machine: {os.cpu_count()} CPUs, {' '.join(sorted(set(wanted)))}; torch threads 2")
    print(f"fine-tuning budget: first {args.train_images} train_list images x {args.epochs} "
          f"epoch(s), batch 8, lr0 {args.lr0}, CPU")  # fmt: skip
    print(f"batch norms of the pruned models re-estimated on {args.bn_images} train_list images")
    baseline = "parent fine-tuned" if args.epochs > 0 else "parent (untouched)"
    reference = evaluators[baseline]
    header = "| model | params (M) | GFLOPs 512 | torch ms | ORT ms | mAP@0.5 [95 % CI] | "
    print(header + f"minus {baseline} [95 % CI] | fine-tune s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, evaluator in evaluators.items():
        ci = bootstrap_detection(evaluator, args.resamples).map50 or (float("nan"),) * 2
        point = evaluator.compute().map50 or 0.0
        diff = bootstrap_detection_difference(evaluator, reference, args.resamples)
        low, high = diff.intervals.map50 or (float("nan"),) * 2
        params, flops = sizes.get(name.replace(" INT8", ""), (0, 0.0))
        torch_ms = speed.get(f"{name}|torch")
        print(
            f"| {name} | {params / 1e6:.2f} | {flops:.2f} | "
            f"{'-' if torch_ms is None else f'{torch_ms:.1f}'} | {speed[f'{name}|onnx']:.1f} | "
            f"{point:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {diff.map50 or 0.0:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] | {seconds.get(name, 0.0):.0f} |"
        )


if __name__ == "__main__":
    main()

"""Quantisation-aware fine-tuning (``optimize detect --qat``) against post-training INT8, on a CPU.

In one run, on TBX11K, the bundled detector (``cxr-tbx11k-yolov5s``):

* ``fp32``: the parent on ONNX Runtime (the accuracy and speed reference);
* ``PTQ INT8``: ``optimize detect --int8`` of the parent (ONNX Runtime static QDQ, per-channel
  weights, head and decode float), calibrated on the first C images of train_list.txt;
* ``QAT INT8``: ``optimize detect --qat``: the parent fine-tuned with INT8 simulated on the
  first N train_list images for E epochs (batch 8, one optimiser step per batch, lr0, no
  warm-up, last EMA weights), then written by the same quantiser on the same C images;
* with ``--control``, ``fine-tuned fp32 + PTQ INT8``: the parent fine-tuned for the same budget
  without fake quantisation, then ``--int8``: separates what QAT adds from what the short
  fine-tune alone does.

Fine-tuning and calibration use train_list.txt only; the trainer's end-of-run check scores 8
further train_list images (not val). Each model is scored on val_list.txt (100 images, never
tuned or calibrated on): mAP@0.5 with its percentile-bootstrap 95 % interval over images, and
paired bootstrap intervals of the differences. Latency: ONNX Runtime forward at batch 1,
2 threads, 512 px, median of R runs interleaved across the models.

Usage:
    python benchmarks/bench_qat.py [--train-images 64] [--epochs 1] [--lr0 0.001]
        [--calibration-images 64] [--control] [--runs 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path[:0] = [str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
from bench_cpu_variants import cpu_flags, latency_ms  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.engine import load_predictor  # noqa: E402
from insightray.engine.quantize import quantize_detector  # noqa: E402
from insightray.models import load_card  # noqa: E402
from insightray.models.catalog import default_model, resolve_card  # noqa: E402
from insightray.training.detection import collect_detections, load_data_split  # noqa: E402
from insightray.training.detection.prune import (  # noqa: E402
    FineTune,
    fine_tune_config,
    fine_tune_detector,
)
from insightray.training.detection.qat import qat_detector  # noqa: E402
from insightray.training.metrics import DetectionEvaluator  # noqa: E402
from insightray.training.metrics.detection_ci import (  # noqa: E402
    bootstrap_detection,
    bootstrap_detection_difference,
)

TBX = data_root() / "cxr" / "tbx11k"
NAMES = "names:\n  0: ActiveTuberculosis\n  1: ObsoletePulmonaryTuberculosis\n"
#: train_list images after the fine-tuning ones that the trainer's end-of-run check scores.
CHECK_IMAGES = 8


def train_only_data(folder: Path, train_images: int) -> Path:
    """A data.yaml of train_list images only: the first N to fine-tune on, the next 8 for
    the trainer's end-of-run check (val_list.txt stays unseen)."""
    lines = (TBX / "train_list.txt").read_text().split()
    splits = {"train": lines[:train_images],
              "val": lines[train_images : train_images + CHECK_IMAGES]}  # fmt: skip
    for split, chosen in splits.items():
        (folder / f"{split}.txt").write_text("".join(f"{TBX / line}\n" for line in chosen))
    data = folder / "data.yaml"
    data.write_text(f"path: .\ntrain: train.txt\nval: val.txt\nnc: 2\n{NAMES}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr0", type=float, default=0.001)
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--method", default="percentile")
    parser.add_argument(
        "--control", action="store_true", help="Also the parent fine-tuned in float, then PTQ."
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--work", help="Keep the models and their val detections here; a "
                        "rerun reuses those present.")  # fmt: skip
    parser.add_argument("--only", nargs="+", help="Build and score only these models "
                        "(e.g. fp32 'PTQ INT8'), untimed; a later run reuses them.")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(2)
    parent_path = resolve_card(None, default=default_model("detection"))
    train_list = (TBX / "train_list.txt").read_text().split()
    calibration = [TBX / p for p in train_list[: args.calibration_images]]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(args.work or scratch_name)
        scratch.mkdir(parents=True, exist_ok=True)
        tuning = FineTune(str(train_only_data(scratch, args.train_images)), args.epochs,
                          args.lr0, batch_size=8, workers=1, device="cpu")  # fmt: skip
        folders = {"fp32": parent_path.parent, "PTQ INT8": scratch / "ptq",
                   "QAT INT8": scratch / "qat"}  # fmt: skip
        seconds: dict[str, float] = {}
        if args.control:
            folders["fine-tuned fp32 + PTQ INT8"] = scratch / "control_int8"
        if args.only:
            folders = {name: folder for name, folder in folders.items() if name in args.only}
        for name, folder in folders.items():
            if name == "fp32" or (folder / "card.json").is_file():
                continue
            started = time.perf_counter()
            if name == "PTQ INT8":
                quantize_detector(None, calibration, folder, args.method)
            elif name == "QAT INT8":
                qat_detector(None, folder, tuning, calibration, args.method)
            else:
                config = fine_tune_config(tuning, parent_path.parent, load_card(parent_path),
                                          scratch / "control")  # fmt: skip
                tuned = fine_tune_detector(config)
                quantize_detector(tuned.parent, calibration, folder, args.method)
            seconds[name] = time.perf_counter() - started
        evaluators = scored(folders, scratch)
        if not args.only:
            report(folders, evaluators, seconds, args)


def scored(folders: dict[str, Path], scratch: Path) -> dict[str, DetectionEvaluator]:
    """Each model's matched detections on val_list.txt, kept in ``scratch`` for reruns."""
    val = load_data_split(str(TBX / "data.yaml"), "val")
    evaluators = {}
    for name, folder in folders.items():
        kept = scratch / f"{name.replace(' ', '_')}.val.pickle"
        if kept.is_file():
            evaluators[name] = pickle.loads(kept.read_bytes())
            continue
        predictor = load_predictor(folder, task="detection", backend="onnx")
        evaluators[name] = collect_detections(predictor, val)
        kept.write_bytes(pickle.dumps(evaluators[name]))
    return evaluators


def report(
    folders: dict[str, Path],
    evaluators: dict[str, DetectionEvaluator],
    seconds: dict[str, float],
    args: argparse.Namespace,
) -> None:
    """Time every model; print the table."""
    predictors = {
        name: load_predictor(folder, task="detection", backend="onnx")
        for name, folder in folders.items()
    }
    speed = latency_ms(predictors, args.runs)
    print(f"machine: {os.cpu_count()} CPUs, {cpu_flags()}; ONNX Runtime and torch, 2 threads")
    print(f"QAT budget: first {args.train_images} train_list images x {args.epochs} epoch(s), "
          f"batch 8, lr0 {args.lr0}, CPU; calibration: first {args.calibration_images} "
          f"train_list images, {args.method}")  # fmt: skip
    print("| model | ORT ms | speed-up vs fp32 ORT | mAP@0.5 [95 % CI] | minus fp32 [95 % CI] "
          "| minus PTQ INT8 [95 % CI] | build s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, evaluator in evaluators.items():
        ci = bootstrap_detection(evaluator, args.resamples).map50 or (float("nan"),) * 2
        point = evaluator.compute().map50 or 0.0
        cells = []
        for reference in ("fp32", "PTQ INT8"):
            if reference == name:
                cells.append("0")
                continue
            diff = bootstrap_detection_difference(evaluator, evaluators[reference], args.resamples)
            low, high = diff.intervals.map50 or (float("nan"),) * 2
            cells.append(f"{diff.map50 or 0.0:+.3f} [{low:+.3f}, {high:+.3f}]")
        print(
            f"| {name} | {speed[name]:.0f} | {speed['fp32'] / speed[name]:.2f}x | "
            f"{point:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {cells[0]} | {cells[1]} | "
            f"{seconds.get(name, 0.0):.0f} |"
        )


if __name__ == "__main__":
    main()

"""Does the unpruned parent as teacher help a pruned detector recover? (CPU, small budget.)

In one run, on TBX11K: the bundled detector (``cxr-tbx11k-yolov5s``, the parent and teacher)
untouched; its channel-pruned copy (``optimize detect --prune R --epochs 0``: Torch-Pruning,
batch norms re-estimated on the first ``--bn-images`` train_list images) untouched; and that
pruned copy fine-tuned for the same budget per seed, **without** a teacher (`train detect
--init`, plain YOLO loss) and **with** the parent as teacher (``optimize detect --distill-from
PARENT --student PRUNED``: the same trainer, loss plus the distillation term). Budget: the
first ``--train-images`` of train_list.txt for ``--epochs``, batch 8, one optimiser step per
batch, ``--lr0`` decayed linearly, no warm-up, last EMA weights kept (nothing chosen on val).

Each row: parameters, GFLOPs at 512 px and mAP@0.5 on val_list.txt (100 images, never trained
on) at confidence 0.001 / NMS 0.6 with its percentile-bootstrap 95 % interval over images;
then the paired bootstrap intervals of distilled minus plain (per seed), and of each model
minus the parent.

A CPU-scale budget (minutes on shared cores), far below a real fine-tune: it compares the two
recipes at one small budget, not what either reaches with a GPU-scale fine-tune.

Usage:
    python benchmarks/bench_detector_distillation.py [--ratios 0.3] [--seeds 0 1]
        [--train-images 128] [--epochs 1] [--lr0 0.001] [--weight 1] [--feature-weight 0]
        [--work DIR] [--only-train | --report]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
from bench_pruning import TBX, fine_tune_data  # noqa: E402

from insightray.engine import load_model, load_predictor  # noqa: E402
from insightray.models import load_card  # noqa: E402
from insightray.models.catalog import default_model, resolve_card  # noqa: E402
from insightray.models.detection.yolo import count_parameters, gflops  # noqa: E402
from insightray.training.detection import collect_detections, load_data_split  # noqa: E402
from insightray.training.detection.datasets import DetectionDataset  # noqa: E402
from insightray.training.detection.distill import student_config  # noqa: E402
from insightray.training.detection.prune import (  # noqa: E402
    FineTune,
    fine_tune_config,
    fine_tune_detector,
    prune_detector,
)
from insightray.training.metrics import DetectionEvaluator  # noqa: E402
from insightray.training.metrics.detection_ci import (  # noqa: E402
    bootstrap_detection,
    bootstrap_detection_difference,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=["plain", "distilled"],
                        help="Arms to train (a process per arm may run in parallel).")  # fmt: skip
    parser.add_argument("--train-images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--bn-images", type=int, default=64)
    parser.add_argument("--lr0", type=float, default=0.001)
    parser.add_argument("--weight", type=float, default=1.0, help="distill_weight")
    parser.add_argument("--feature-weight", type=float, default=0.0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default="runs/bench-detector-distillation")
    parser.add_argument("--only-train", action="store_true", help="Train the arms, no report.")
    parser.add_argument("--report", action="store_true", help="Report finished arms only.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parent = resolve_card(None, default=default_model("detection")).parent
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {"parent (teacher)": parent}
    bn_images = [TBX / p for p in (TBX / "train_list.txt").read_text().split()[: args.bn_images]]
    for ratio in args.ratios:
        percent = round(ratio * 100)
        pruned = work / f"pruned{percent}"
        if not (pruned / "card.json").is_file():
            prune_detector(parent, ratio, pruned, FineTune(epochs=0), None, bn_images)
        folders[f"pruned {percent} % (untouched)"] = pruned
        for seed in args.seeds:
            for arm in ("plain", "distilled"):
                run = work / f"pruned{percent}-{arm}-seed{seed}"
                folders[f"pruned {percent} % {arm} seed {seed}"] = run / "model_last"
                wanted = not args.report and arm in args.arms
                if wanted and not (run / "model_last" / "card.json").is_file():
                    _train(args, parent, pruned, run, arm, seed)
    if not args.only_train:
        report(folders, args)


def _train(args: argparse.Namespace, parent: Path, pruned: Path, run: Path, arm: str,
           seed: int) -> None:  # fmt: skip
    data = fine_tune_data(run.parent, args.train_images)
    tuning = FineTune(str(data), args.epochs, args.lr0, 8, 1, "cpu", seed)
    if arm == "plain":
        config = fine_tune_config(tuning, pruned, load_card(pruned / "card.json"), run)
    else:
        config = student_config(str(pruned), str(parent), tuning, run, args.weight,
                                args.feature_weight)  # fmt: skip
    started = time.perf_counter()
    fine_tune_detector(config)
    (run / "seconds.txt").write_text(f"{time.perf_counter() - started:.0f}\n")


def report(folders: dict[str, Path], args: argparse.Namespace) -> None:
    """Count, evaluate and compare every model present; print the tables."""
    val = load_data_split(str(TBX / "data.yaml"), "val")
    evaluators, sizes = {}, {}
    for name, folder in folders.items():
        if not (folder / "card.json").is_file():
            continue
        card = load_card(folder / "card.json")
        network = load_model(card, folder / str(card.weights_file))
        sizes[name] = (count_parameters(network), gflops(network, 512))
        evaluators[name] = _evaluation(folder, val, Path(args.work) / "eval")
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    wanted = [f for f in flags.split() if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2"))]
    print(f"machine: {os.cpu_count()} CPUs, {' '.join(sorted(set(wanted)))}; "
          f"torch threads {args.threads}")  # fmt: skip
    print(
        f"budget: first {args.train_images} train_list images x {args.epochs} epoch(s), "
        f"batch 8, lr0 {args.lr0}, CPU; distill_weight {args.weight}, "
        f"feature weight {args.feature_weight}; BN re-estimated on {args.bn_images} images"
    )
    parent = evaluators["parent (teacher)"]
    print("| model | params (M) | GFLOPs 512 | fine-tune s | mAP@0.5 [95 % CI] | "
          "minus parent [95 % CI] |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, evaluator in evaluators.items():
        ci = bootstrap_detection(evaluator, args.resamples).map50 or (float("nan"),) * 2
        point = evaluator.compute().map50 or 0.0
        params, flops = sizes[name]
        seconds_file = folders[name].parent / "seconds.txt"
        seconds = seconds_file.read_text().strip() if seconds_file.is_file() else "-"
        print(f"| {name} | {params / 1e6:.2f} | {flops:.2f} | {seconds} | {point:.3f} "
              f"[{ci[0]:.3f}, {ci[1]:.3f}] | {_difference(evaluator, parent, args)} |")  # fmt: skip
    print("\n| pair (same seed) | distilled minus plain, mAP@0.5 [95 % CI] |\n|---|---|")
    for name, evaluator in evaluators.items():
        plain = name.replace(" distilled ", " plain ")
        if " distilled " in name and plain in evaluators:
            print(f"| {name} | {_difference(evaluator, evaluators[plain], args)} |")


def _evaluation(folder: Path, val: DetectionDataset, cache: Path) -> DetectionEvaluator:
    """The model's detections on ``val``, kept in ``cache`` (a rerun evaluates new models only)."""
    cache.mkdir(exist_ok=True)
    kept = cache / (str(folder.resolve()).strip("/").replace("/", "_") + ".pkl")
    if kept.is_file():
        with kept.open("rb") as handle:
            evaluator: DetectionEvaluator = pickle.load(handle)  # our own file
        return evaluator
    predictor = load_predictor(folder, task="detection", backend="torch")
    evaluator = collect_detections(predictor, val)
    with kept.open("wb") as handle:
        pickle.dump(evaluator, handle)
    return evaluator


def _difference(a: object, b: object, args: argparse.Namespace) -> str:
    diff = bootstrap_detection_difference(a, b, args.resamples)  # type: ignore[arg-type]
    low, high = diff.intervals.map50 or (float("nan"),) * 2
    return f"{diff.map50 or 0.0:+.3f} [{low:+.3f}, {high:+.3f}]"


if __name__ == "__main__":
    main()

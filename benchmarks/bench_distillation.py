"""Fracture classifier distillation: a smaller student with and without the teacher (CPU scale).

The teacher is the strongest fracture model on disk, the bundled ``fracture-roboflow-lite0``
(EfficientNet-Lite0 at 160 px; no trained ensemble exists locally, and training one does not fit
a 2-core budget). The student is EfficientNet-Lite0 at a smaller input (``--student-size``,
112 px by default: half the pixels, so about half the compute), from the packaged ImageNet
weights. Both student arms share everything (steps, batch, learning rate, augmentation, init,
seed, the trainer and its model selection by validation AUC); the distilled arm adds
``optimize fracture``'s loss (``alpha``, ``T`` fixed before the run, not tuned). The arms run
interleaved, seed by seed, so machine load hits both alike.

Data: the trainer's group-aware split of ``bone_fracture_roboflow`` (split_seed 0, the split
the teacher was trained on); the test split is dropped before training (never read). Reported:
validation AUC per run, the mean per arm with a 95 % t-interval over seeds, the paired
difference (distilled minus plain, same seed) with its t-interval, the teacher's validation AUC
(native, and on the student's smaller images resized up as in distillation), and CPU latency
(batch 1, 2 threads, preparation and forward, median over images) of student against teacher
measured in the same run.

Usage:
    python benchmarks/bench_distillation.py --seeds 0 1 2 --out runs/distill-bench
    python benchmarks/bench_distillation.py --report --out runs/distill-bench  # finished pairs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from insightray.config import data_root
from insightray.engine import load_predictor
from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.imaging import read_image
from insightray.training.fracture import FractureTrainConfig, load_prepared, train_fracture
from insightray.training.fracture.dataset import load_fracture_items, split_by_group
from insightray.training.fracture.distill import DistillSettings, distill_fracture, load_teacher
from insightray.training.metrics.roc import roc_auc

DATA = data_root() / "fracture" / "bone_fracture_roboflow"
TEACHER = "fracture-roboflow-lite0"


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % Student-t interval (``nan`` bounds for one value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values)
    return mean, mean - half, mean + half


def teacher_auc(splits: Any, size: int, cache: Path) -> dict[str, float]:
    """The teacher's validation AUC on its own 160 px images and on the student's, resized."""
    teacher = load_teacher(TEACHER)
    labels = np.array([item.label for item in splits.val])
    result = {}
    for name, side in (("native", teacher.input_size), ("student_images_resized", size)):
        images = load_prepared(splits.val, teacher.enhancement, side, cache)
        batch = torch.from_numpy((images[:, None].astype(np.float32) - GRAY_MEAN) / GRAY_STD)
        logits = torch.cat([teacher.logits(batch[i : i + 32]) for i in range(0, len(batch), 32)])
        result[name] = roc_auc(labels, logits.numpy().astype(np.float64))
    return result


def latency(student_card: Path, runs: int) -> dict[str, float]:
    """Median ms per image (batch 1, 2 threads), student and teacher interleaved."""
    torch.set_num_threads(2)
    student = load_predictor(student_card, task="classification")
    teacher = load_predictor(TEACHER, task="classification")
    items = load_fracture_items(DATA)[:runs]
    images = [read_image(item.path).pixels for item in items]
    times: dict[str, list[float]] = {"student": [], "teacher": []}
    for predictor in (student, teacher):
        predictor.warm_up()
    for image in images:
        for name, predictor in (("student", student), ("teacher", teacher)):
            start = time.perf_counter()
            predictor.predict_arrays([image])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--student-size", type=int, default=112)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("runs/distill-bench"))
    parser.add_argument(
        "--report", action="store_true", help="Summarise the finished runs of OUT/results.json."
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cache"
    items = load_fracture_items(DATA)
    splits = split_by_group(items, val_fraction=0.15, test_fraction=0.15, seed=0)
    splits = dataclasses.replace(splits, test=[])  # never read: nothing is decided on it
    teacher = load_teacher(TEACHER)
    settings = DistillSettings(args.alpha, args.temperature)
    base = FractureTrainConfig(
        data=str(DATA),
        model="efficientnet_lite0",
        pretrained=True,
        image_size=args.student_size,
        max_steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.steps // 3,
        patience=0,
        threads=2,
        device="cpu",
        preprocessing=teacher.enhancement,
        cache_dir=str(cache),
    )
    results_path = args.out / "results.json"
    rows: list[dict[str, Any]] = []
    if args.report:
        rows = json.loads(results_path.read_text())["runs"]
        args.seeds = sorted({row["seed"] for row in rows})
    for seed in [] if args.report else args.seeds:
        for arm in ("plain", "distilled"):
            config = dataclasses.replace(base, seed=seed, out=str(args.out / f"{arm}-s{seed}"))
            quiet = lambda line: None  # noqa: E731
            if arm == "plain":
                result = train_fracture(config, quiet, splits=splits)
            else:
                result = distill_fracture(config, teacher, settings, quiet, splits=splits)
            rows.append({"seed": seed, "arm": arm, "val_auc": result.val.auc,
                         "best_step": result.best_step, "seconds": round(result.seconds, 1),
                         "card": str(result.card_path)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            results_path.write_text(json.dumps({"runs": rows}, indent=2))
    paired = [
        s
        for s in args.seeds
        if {r["arm"] for r in rows if r["seed"] == s} == {"plain", "distilled"}
    ]
    rows = [r for r in rows if r["seed"] in paired]
    by_arm = {
        arm: [r["val_auc"] for r in rows if r["arm"] == arm] for arm in ("plain", "distilled")
    }
    diffs = [d - p for p, d in zip(by_arm["plain"], by_arm["distilled"], strict=True)]
    summary: dict[str, Any] = {
        "settings": vars(args) | {"out": str(args.out)},
        "runs": rows,
        "plain": t_interval(by_arm["plain"]),
        "distilled": t_interval(by_arm["distilled"]),
        "difference": t_interval(diffs),
        "teacher_val_auc": teacher_auc(splits, args.student_size, cache),
        "latency_ms": latency(Path(rows[-1]["card"]), args.latency_runs),
        "train_minutes": round(sum(r["seconds"] for r in rows) / 60, 1),
        "cpu_flags": sorted(
            set(Path("/proc/cpuinfo").read_text().split())
            & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"}
        ),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    for arm in ("plain", "distilled", "difference"):
        mean, low, high = summary[arm]
        print(f"{arm}: val AUC mean {mean:.4f} [95 % t {low:.4f}, {high:.4f}]")
    print(json.dumps({k: summary[k] for k in ("teacher_val_auc", "latency_ms", "cpu_flags")}))


if __name__ == "__main__":
    main()

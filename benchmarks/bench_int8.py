"""INT8 detector against its fp32 parent on ONNX Runtime: speed and TBX11K accuracy, one run.

The bundled detector is quantised with `insightray optimize detect --int8` (static QDQ,
per-channel weights, the Detect head and decode in float), calibrated on the first N images of
TBX11K's train_list.txt; both models are then evaluated on val_list.txt (never calibrated on),
with mAP@0.5 and a paired bootstrap 95 % interval of the difference over images, and timed
(batch 1, 2 threads, 512 px, network forward only, median of R interleaved runs).

Usage:
    python benchmarks/bench_int8.py [--calibration-images 64] [--method minmax] [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from insightray.config import data_root
from insightray.engine import DetectionPredictor, load_predictor
from insightray.engine.quantize import quantize_detector
from insightray.imaging import read_image
from insightray.training.detection import load_data_split
from insightray.training.detection.evaluate import EVAL_CONF, EVAL_IOU
from insightray.training.metrics.detection import DetectionEvaluator

TBX = data_root() / "cxr" / "tbx11k"
Found = list[tuple[np.ndarray, list[float], list[int]]]


def predictions(predictor: DetectionPredictor, paths: list[Path]) -> Found:
    """Per image: boxes, scores and class ids at the evaluation thresholds."""
    found: Found = []
    for path in paths:
        result = predictor.predict_arrays([read_image(path).pixels])[0]
        boxes = np.array([d.box_px for d in result.detections], np.float64).reshape(-1, 4)
        found.append((boxes, [d.score for d in result.detections],
                      [d.class_id for d in result.detections]))  # fmt: skip
    return found


def map50(records: list, found: Found, names: list[str], order: np.ndarray) -> float:
    """mAP@0.5 over the images in ``order`` (indices may repeat: a bootstrap sample)."""
    evaluator = DetectionEvaluator(names)
    for position, index in enumerate(order):
        record = records[index]
        boxes, scores, classes = found[index]
        evaluator.add(record.boxes, record.labels, boxes, scores, classes, image_id=str(position))
    return float(evaluator.compute().to_dict()["map50"])


def latency_ms(predictors: dict[str, DetectionPredictor], runs: int) -> dict[str, float]:
    """Median forward time per model, batch 1, interleaved so load hits both alike."""
    batch = np.random.default_rng(0).random((1, 3, 512, 512), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.backend(batch)  # warm-up
    for _ in range(runs):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.backend(batch)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    train = (TBX / "train_list.txt").read_text().split()[: args.calibration_images]
    val = load_data_split(str(TBX / "data.yaml"), "val")
    paths = [record.image_path for record in val.records]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        quantize_detector(None, [TBX / p for p in train], scratch, args.method)
        seconds = time.perf_counter() - started
        options = {"conf_threshold": EVAL_CONF, "iou_threshold": EVAL_IOU, "max_det": 300}
        predictors = {
            "fp32 ORT": load_predictor(task="detection", backend="onnx", **options),
            "int8 ORT": load_predictor(scratch, task="detection", **options),
        }
        speed = latency_ms(predictors, args.runs)
        found = {name: predictions(p, paths) for name, p in predictors.items()}
    names = list(val.class_names)
    everything = np.arange(len(paths))
    scores = {name: map50(val.records, f, names, everything) for name, f in found.items()}
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(args.resamples):
        sample = rng.integers(0, len(paths), len(paths))
        differences.append(
            map50(val.records, found["int8 ORT"], names, sample)
            - map50(val.records, found["fp32 ORT"], names, sample)
        )
    low, high = np.percentile(differences, [2.5, 97.5])
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    wanted = [f for f in flags.split() if f.startswith(("avx512_vnni", "avx_vnni", "amx", "avx2"))]
    print(f"machine: {os.cpu_count()} CPUs, {' '.join(sorted(set(wanted)))}")
    print(f"quantised in {seconds:.1f} s on {len(train)} train images ({args.method})")
    for name in predictors:
        print(f"{name}: {speed[name]:.1f} ms, mAP@0.5 {scores[name]:.4f} ({len(paths)} val images)")
    ratio = speed["fp32 ORT"] / speed["int8 ORT"]
    print(f"int8 vs fp32: {ratio:.2f}x faster; mAP@0.5 difference "
          f"{scores['int8 ORT'] - scores['fp32 ORT']:+.4f} [{low:+.4f}, {high:+.4f}]")  # fmt: skip


if __name__ == "__main__":
    main()

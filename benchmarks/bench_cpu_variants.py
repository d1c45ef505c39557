"""The detector's CPU variants against its fp32 ONNX Runtime path: speed and TBX11K accuracy.

Variants (each a backend or a model folder that `detect`, `evaluate detect` and the service
take): fp32 on ONNX Runtime (the reference), INT8 on ONNX Runtime (`insightray optimize detect
--int8`: static QDQ, per-channel weights, the Detect head and decode in float, calibrated on the
first N images of TBX11K's train_list.txt), fp32 and bfloat16 on OpenVINO (`--backend openvino`,
`--backend openvino-bf16`), and the INT8 graph on OpenVINO. Each is evaluated on val_list.txt
(never calibrated on): mAP@0.5 with a paired bootstrap 95 % interval of its difference from the
reference over images; and timed: network forward pass at batch 1, 2 threads, 512 px, median of
R runs interleaved across variants so machine load hits all alike. Writes a speed/accuracy plot.

With ``--reference-pytorch`` our PyTorch path joins the variants and the reference YOLOv5s
(ultralytics v7.0, in its own venv: ``benchmarks/setup_reference.sh``) is timed on PyTorch in a
subprocess the same way (fused fp32, batch 1, 2 threads, 512 px; random weights, as speed does
not depend on them), in rounds alternating with ours; each variant keeps its best round, and
the table gains each variant's speed against the reference's PyTorch.

Usage:
    python benchmarks/bench_cpu_variants.py [--calibration-images 64] [--method percentile]
        [--int8 DIR] [--runs 50] [--rounds 1] [--reference-pytorch] [--resamples 1000]
        [--plot docs/benchmarks/cpu_variants.png]
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

import matplotlib
import numpy as np

from insightray.config import data_root
from insightray.engine import DetectionPredictor, load_predictor
from insightray.engine.quantize import quantize_detector
from insightray.imaging import read_image
from insightray.training.detection import load_data_split
from insightray.training.detection.evaluate import EVAL_CONF, EVAL_IOU
from insightray.training.metrics.detection import DetectionEvaluator

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TBX = data_root() / "cxr" / "tbx11k"
REFERENCE = "fp32 ONNX Runtime"
OURS_TORCH = "fp32 PyTorch (ours)"
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
    """Median forward time per variant, batch 1, interleaved so load hits all alike."""
    channels = next(iter(predictors.values())).backend.input_channels
    batch = np.random.default_rng(0).random((1, channels, 512, 512), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.backend(batch)  # warm-up
    for _ in range(runs):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.backend(batch)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def timed(
    predictors: dict[str, DetectionPredictor], args: argparse.Namespace
) -> tuple[dict[str, float], float | None]:
    """Best-of-rounds :func:`latency_ms`, and the reference's PyTorch ms at 512 px (``None``
    without ``--reference-pytorch``), timed in rounds alternating with ours."""
    best: dict[str, float] = {}
    reference_ms = None
    for _ in range(args.rounds):
        if args.reference_pytorch:
            from bench_detector_speed import reference  # the script beside this one

            measured = reference(args.runs, [512])["torch_512"]
            reference_ms = measured if reference_ms is None else min(reference_ms, measured)
        for name, value in latency_ms(predictors, args.runs).items():
            best[name] = min(best.get(name, value), value)
    return best, reference_ms


def cpu_flags() -> str:
    """The instruction sets that decide these figures, from lscpu."""
    flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx")
    return " ".join(sorted({f for f in flags if f.startswith(wanted)}))


def plot(rows: dict[str, tuple[float, float]], path: Path) -> None:
    """Speed-up against mAP@0.5, one point per variant."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, (speedup, score) in rows.items():
        axes.scatter(speedup, score)
        axes.annotate(name, (speedup, score), textcoords="offset points", xytext=(4, 4))
    axes.set_xlabel(f"speed-up against {REFERENCE} (batch 1, 2 threads, 512 px)")
    axes.set_ylabel("mAP@0.5, TBX11K val_list (100 images)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--int8", type=Path, help="An INT8 folder made before (skips quantising).")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="Timing rounds; the best is kept.")
    parser.add_argument("--reference-pytorch", action="store_true",
                        help="Also time ours and the reference YOLOv5s on PyTorch.")  # fmt: skip
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--plot", type=Path, default=Path("docs/benchmarks/cpu_variants.png"))
    args = parser.parse_args()
    val = load_data_split(str(TBX / "data.yaml"), "val")
    paths = [record.image_path for record in val.records]
    options = {"conf_threshold": EVAL_CONF, "iou_threshold": EVAL_IOU, "max_det": 300}
    with tempfile.TemporaryDirectory() as scratch:
        int8 = args.int8
        if int8 is None:
            int8 = Path(scratch)
            train = (TBX / "train_list.txt").read_text().split()[: args.calibration_images]
            started = time.perf_counter()
            quantize_detector(None, [TBX / p for p in train], int8, args.method)
            print(f"quantised in {time.perf_counter() - started:.0f} s on {len(train)} images")
        calibration = load_predictor(int8, task="detection").card.lineage
        print(f"INT8: {calibration.settings['calibration']} on {calibration.data}")
        predictors = {
            REFERENCE: load_predictor(task="detection", backend="onnx", **options),
            "INT8 ONNX Runtime": load_predictor(int8, task="detection", **options),
            "fp32 OpenVINO": load_predictor(task="detection", backend="openvino", **options),
            "bf16 OpenVINO": load_predictor(task="detection", backend="openvino-bf16", **options),
            "INT8 OpenVINO": load_predictor(int8, task="detection", backend="openvino", **options),
        }
        if args.reference_pytorch:
            predictors[OURS_TORCH] = load_predictor(task="detection", backend="torch", **options)
        speed, reference_torch = timed(predictors, args)
        found = {name: predictions(p, paths) for name, p in predictors.items()}
    names = list(val.class_names)
    everything = np.arange(len(paths))
    scores = {name: map50(val.records, f, names, everything) for name, f in found.items()}
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, len(paths), len(paths)) for _ in range(args.resamples)]
    reference = [map50(val.records, found[REFERENCE], names, s) for s in samples]
    print(f"machine: {os.cpu_count()} CPUs, {cpu_flags()}; load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.rounds} round(s) of {args.runs} interleaved "
          "runs")  # fmt: skip
    against = "" if reference_torch is None else " vs reference PyTorch |"
    if reference_torch is not None:
        print(f"reference YOLOv5s (ultralytics v7.0) PyTorch fp32 fused: {reference_torch:.1f} ms")
    print(f"| variant | ms | speed-up |{against} mAP@0.5 | difference [95 % CI] |")
    print("|---|---|---|---|---|" + ("---|" if against else ""))
    rows = {}
    for name in predictors:
        ratio = speed[REFERENCE] / speed[name]
        rows[name] = (ratio, scores[name])
        vs_reference = "" if reference_torch is None else f" {reference_torch / speed[name]:.2f}x |"
        if name == REFERENCE:
            print(f"| {name} (reference) | {speed[name]:.1f} | 1.00x |{vs_reference} "
                  f"{scores[name]:.4f} | |")  # fmt: skip
            continue
        differences = [
            map50(val.records, found[name], names, s) - r
            for s, r in zip(samples, reference, strict=True)
        ]
        low, high = np.percentile(differences, [2.5, 97.5])
        print(f"| {name} | {speed[name]:.1f} | {ratio:.2f}x |{vs_reference} {scores[name]:.4f} | "
              f"{scores[name] - scores[REFERENCE]:+.4f} [{low:+.4f}, {high:+.4f}] |")  # fmt: skip
    plot(rows, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()

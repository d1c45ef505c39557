"""CPU inference speed of our YOLOv5s against the reference (ultralytics YOLOv5 v7.0), one run.

Both models: 2 classes, random weights (speed does not depend on them), Conv+BN fused, fp32,
batch 1, 2 threads, the network forward pass only (no pre/post-processing), median of N runs
after warm-up, for PyTorch and ONNX Runtime at 512 and 640 px. The reference runs in its own
venv (`benchmarks/setup_reference.sh`), in a subprocess, at the same time on the same machine.

Usage:
    python benchmarks/bench_detector_speed.py [--runs 15] [--sizes 512 640]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

THREADS = 2
os.environ["OMP_NUM_THREADS"] = str(THREADS)
REFERENCE_PYTHON = Path(__file__).resolve().parents[1] / ".bench-venv" / "bin" / "python"

# Runs inside the reference venv: builds the reference model from its own yolov5s.yaml.
REFERENCE_SNIPPET = r"""
import json, os, statistics, sys, tempfile, time
import torch, onnxruntime as ort, yolov5
from yolov5.models.yolo import Model
torch.set_num_threads(2)
runs, sizes = int(sys.argv[1]), [int(s) for s in sys.argv[2:]]
model = Model(os.path.join(os.path.dirname(yolov5.__file__), "models", "yolov5s.yaml"), ch=3, nc=2)
model = model.eval().fuse()
for m in model.modules():
    if hasattr(m, "export"):
        m.export = True  # the reference's own switch: return predictions only
def median_ms(fn):
    for _ in range(3): fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
out = {"params": sum(p.numel() for p in model.parameters())}
for size in sizes:
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        out[f"torch_{size}"] = median_ms(lambda: model(x))
    path = os.path.join(tempfile.mkdtemp(), "ref.onnx")
    torch.onnx.export(model, x, path, opset_version=17, dynamo=False,
                      input_names=["images"], output_names=["output"])
    opts = ort.SessionOptions(); opts.intra_op_num_threads = 2; opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {"images": x.numpy()}
    out[f"onnx_{size}"] = median_ms(lambda: session.run(None, feed))
print(json.dumps(out))
"""


def median_ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ours(runs: int, sizes: list[int]) -> dict[str, float]:
    import numpy as np
    import torch

    from insightray.engine.backends import OnnxBackend
    from insightray.engine.export import export_onnx
    from insightray.models import create_model
    from insightray.models.detection.yolo import count_parameters

    torch.set_num_threads(THREADS)
    model = create_model("yolov5s", num_classes=2).eval()
    fused = create_model("yolov5s", num_classes=2).eval()
    fused.load_state_dict(model.state_dict())
    fused.fuse()
    result: dict[str, float] = {"params": float(count_parameters(fused))}
    for size in sizes:
        x = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            result[f"torch_{size}"] = median_ms(partial(fused, x), runs)
        path = Path(tempfile.mkdtemp()) / "ours.onnx"
        export_onnx(model, path, image_size=size, channels=3)
        backend = OnnxBackend(path, intra_op_num_threads=THREADS)
        batch = np.zeros((1, 3, size, size), dtype=np.float32)
        result[f"onnx_{size}"] = median_ms(partial(backend, batch), runs)
    return result


def reference(runs: int, sizes: list[int]) -> dict[str, float]:
    if not REFERENCE_PYTHON.exists():
        sys.exit("reference venv missing: run benchmarks/setup_reference.sh first")
    done = subprocess.run(
        [str(REFERENCE_PYTHON), "-c", REFERENCE_SNIPPET, str(runs), *map(str, sizes)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 640])
    parser.add_argument("--rounds", type=int, default=2, help="alternate ours/reference rounds")
    args = parser.parse_args()
    # Alternate the two and keep each one's best median, so load drift hits both alike.
    mine: dict[str, float] = {}
    ref: dict[str, float] = {}
    for _ in range(args.rounds):
        for best, measure in ((ref, reference), (mine, ours)):
            for key, value in measure(args.runs, args.sizes).items():
                best[key] = min(best.get(key, value), value)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {THREADS} threads, batch 1, "
        f"fp32, fused, best of {args.rounds} alternating rounds of a median of {args.runs}"
    )
    print(f"parameters: ours {int(mine['params']):,}, reference {int(ref['params']):,}")
    print(
        "| size | reference PyTorch ms | ours PyTorch ms | reference ORT ms | ours ORT ms | "
        "ours PyTorch vs ref PyTorch | ours ORT vs ref PyTorch |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        rt, ot = ref[f"torch_{size}"], mine[f"torch_{size}"]
        ro, oo = ref[f"onnx_{size}"], mine[f"onnx_{size}"]
        print(
            f"| {size} | {rt:.1f} | {ot:.1f} | {ro:.1f} | {oo:.1f} | {rt / ot:.2f}x | "
            f"{rt / oo:.2f}x |"
        )


if __name__ == "__main__":
    main()

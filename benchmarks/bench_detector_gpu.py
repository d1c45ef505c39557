"""GPU speed of our YOLOv5s against the reference (ultralytics YOLOv5 v7.0), in one run.

Both models: 2 classes, random weights (speed does not depend on them), the network alone on
GPU-resident tensors, so the two data pipelines are left out:

* inference: Conv+BN fused, fp16 weights and input, batch 1 and 32, images per second;
* training step: fp32 weights with autocast fp16 and a gradient scaler, each side's own loss
  (ours :class:`~insightray.training.detection.loss.YoloLoss`, the reference's ``ComputeLoss`` with
  ``hyp.scratch-low`` gains), backward and an SGD step, batch 32, images per second.

Each side runs in its own subprocess of this script (``--side``), alternating, best of
``--rounds``. The reference is imported from ``--reference-python`` (default: the
``.bench-venv`` of ``benchmarks/setup_reference.sh``) with ``--reference-path`` prepended to its
``PYTHONPATH`` (a folder holding the ``yolov5`` package where no venv can be made, e.g. a
machine without network).

Usage:
    python benchmarks/bench_detector_gpu.py [--size 512] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BATCH = 32


def images_per_second(step: Callable[[], object], batch: int, seconds: float = 3.0) -> float:
    """Run ``step`` after warm-up for about ``seconds``; images per second (CUDA synchronised)."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(10):
        step()
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        sync()
        count += 10
    return count * batch / (time.perf_counter() - start)


def build(side: str, device: Any) -> tuple[Any, Any]:
    """A fresh 2-class YOLOv5s and a ``loss(raw_outputs, targets)`` for it, on ``device``."""
    if side == "ours":
        from insightray.models import create_model
        from insightray.training.detection.loss import LossConfig, YoloLoss

        model = create_model("yolov5s", num_classes=2).to(device)
        loss = YoloLoss(model.detect.anchors, model.detect.stride, 2, LossConfig())
        return model, loss
    import yolov5
    from yolov5.models.yolo import Model
    from yolov5.utils.loss import ComputeLoss

    model = Model(str(Path(yolov5.__file__).parent / "models" / "yolov5s.yaml"), ch=3, nc=2)
    model = model.to(device)
    model.hyp = {  # hyp.scratch-low's loss gains
        "box": 0.05,
        "cls": 0.5,
        "cls_pw": 1.0,
        "obj": 1.0,
        "obj_pw": 1.0,
        "anchor_t": 4.0,
        "fl_gamma": 0.0,
        "label_smoothing": 0.0,
    }
    return model, ComputeLoss(model)


def measure(side: str, size: int) -> dict[str, float]:
    """Inference (fp16, batch 1 and 32) and training-step images per second of one side.

    Without CUDA (a quick check of this script on a CPU) it runs fp32 inference and bf16
    autocast instead; such figures are not GPU figures.
    """
    import torch

    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype, amp_dtype = (torch.float16, torch.float16) if cuda else (torch.float32, torch.bfloat16)
    result: dict[str, float] = {}
    model, loss_fn = build(side, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)
    images = torch.rand(TRAIN_BATCH, 3, size, size, device=device)
    per_image = torch.tensor([[0, 0.3, 0.4, 0.1, 0.15], [1, 0.6, 0.5, 0.2, 0.1]])
    targets = torch.cat(
        [torch.cat((torch.full((2, 1), float(i)), per_image), 1) for i in range(TRAIN_BATCH)]
    ).to(device)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype):
            loss = loss_fn(model(images), targets)[0]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    result["train_b32"] = images_per_second(train_step, TRAIN_BATCH)
    model.eval().fuse()
    for module in model.modules():
        if side == "reference" and hasattr(module, "export"):
            module.export = True  # the reference's own switch: return predictions only
    model.to(dtype)
    with torch.no_grad():
        for batch in (1, 32):
            x = torch.rand(batch, 3, size, size, device=device, dtype=dtype)
            result[f"infer_b{batch}"] = images_per_second(lambda x=x: model(x), batch)
    result["params"] = float(sum(p.numel() for p in model.parameters()))
    return result


def run_side(side: str, size: int, python: str, extra_path: str | None) -> dict[str, float]:
    env = dict(os.environ)
    paths = [str(ROOT)] if side == "ours" else []
    if extra_path and side == "reference":
        paths.insert(0, extra_path)
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).strip(os.pathsep)
    command = [python, str(Path(__file__).resolve()), "--side", side, "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="alternate ours/reference rounds")
    parser.add_argument("--reference-python", default=str(ROOT / ".bench-venv" / "bin" / "python"))
    parser.add_argument("--reference-path", default=None, help="prepended to PYTHONPATH")
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.side, args.size)))
        return
    import torch

    if not torch.cuda.is_available():
        print("no CUDA here: a check of the script, not a GPU benchmark")
    best: dict[str, dict[str, float]] = {"ours": {}, "reference": {}}
    for _ in range(args.rounds):
        for side, python in (("reference", args.reference_python), ("ours", sys.executable)):
            for key, value in run_side(side, args.size, python, args.reference_path).items():
                best[side][key] = max(best[side].get(key, value), value)
    ours, ref = best["ours"], best["reference"]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"device: {name}, torch {torch.__version__}, {args.size} px, "
        f"best of {args.rounds} alternating rounds of about 3 s each"
    )
    print(f"parameters: ours {int(ours['params']):,}, reference {int(ref['params']):,}")
    print("| measure | reference images/s | ours images/s | ours vs reference |")
    print("|---|---|---|---|")
    for key, label in (
        ("infer_b1", "inference fp16, batch 1"),
        ("infer_b32", "inference fp16, batch 32"),
        ("train_b32", f"training step AMP, batch {TRAIN_BATCH}"),
    ):
        print(f"| {label} | {ref[key]:.0f} | {ours[key]:.0f} | {ours[key] / ref[key]:.2f}x |")


if __name__ == "__main__":
    main()

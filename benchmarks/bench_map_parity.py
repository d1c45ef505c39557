"""Metric parity: our mAP against the reference YOLOv5's ``ap_per_class`` on identical boxes.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_map_parity.py \
        --data ../shared/data/cxr/tbx11k/data.yaml --split val

Runs the bundled detector once over the split (evaluation settings: conf 0.001, NMS IoU 0.6,
300 boxes), scores those same boxes with :class:`insightray.training.metrics.DetectionEvaluator`
and with the reference's matching and AP code (``benchmarks/reference_map.py`` in the
benchmark venv, ``benchmarks/setup_reference.sh``), and prints both as JSON. The test
``tests/training/test_map_parity.py`` does the same on synthetic boxes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SCRIPT = ROOT / "benchmarks" / "reference_map.py"

#: (gt boxes (M, 4), gt classes (M,), pred boxes (N, 4), scores (N,), pred classes (N,))
ImageBoxes = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def reference_python() -> Path | None:
    """The benchmark venv's Python if it has yolov5 (``INSIGHTRAY_BENCH_VENV`` or .bench-venv)."""
    venv = Path(os.environ.get("INSIGHTRAY_BENCH_VENV", ROOT / ".bench-venv"))
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    check = subprocess.run([python, "-c", "import yolov5"], capture_output=True, check=False)
    return python if check.returncode == 0 else None


def reference_map(images: Sequence[ImageBoxes], names: Sequence[str], python: Path) -> dict:
    """The reference's mAP@0.5, mAP@0.5:0.95 and AP50 per class for these boxes."""
    arrays: dict[str, np.ndarray] = {"names": np.array(names)}
    for index, (gt, gt_cls, pred, score, pred_cls) in enumerate(images):
        arrays[f"gt_{index}"] = np.column_stack([gt_cls, gt]).astype(np.float32).reshape(-1, 5)
        arrays[f"pred_{index}"] = (
            np.column_stack([pred, score, pred_cls]).astype(np.float32).reshape(-1, 6)
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "boxes.npz"
        np.savez(path, **arrays)
        env = os.environ | {"YOLOv5_VERBOSE": "False", "PYTHONPATH": ""}
        done = subprocess.run(
            [python, str(REFERENCE_SCRIPT), str(path)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=folder,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_map(images: Sequence[ImageBoxes], names: Sequence[str]) -> dict:
    """Our mAP@0.5, mAP@0.5:0.95 and AP50 per class for the same boxes."""
    from insightray.training.metrics import DetectionEvaluator

    evaluator = DetectionEvaluator(list(names))
    for index, (gt, gt_cls, pred, score, pred_cls) in enumerate(images):
        evaluator.add(gt, gt_cls, pred, score, pred_cls, image_id=str(index))
    metrics = evaluator.compute()
    return {
        "map50": metrics.map50,
        "map50_95": metrics.map50_95,
        "ap50": {c.name: c.ap50 for c in metrics.per_class if c.ap50 is not None},
    }


def detector_boxes(data: str, split: str, model: str | None) -> tuple[list[ImageBoxes], list[str]]:
    """The detector's evaluation boxes on a split, with its ground truth."""
    from insightray.engine import load_predictor
    from insightray.imaging import read_image
    from insightray.training.detection import EVAL_CONF, EVAL_IOU, load_data_split

    dataset = load_data_split(data, split)
    predictor = load_predictor(model, task="detection")
    images = []
    for record in dataset.records:
        pixels = read_image(record.image_path).pixels
        boxes, scores, classes = predictor.find_boxes([pixels], EVAL_CONF, EVAL_IOU, 300)[0]
        images.append((record.boxes, record.labels, boxes, scores, classes))
    return images, list(dataset.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    python = reference_python()
    if python is None:
        sys.exit("no benchmark venv with yolov5: run benchmarks/setup_reference.sh")
    images, names = detector_boxes(args.data, args.split, args.model)
    ours, reference = our_map(images, names), reference_map(images, names, python)
    print(
        json.dumps(
            {
                "images": len(images),
                "ours": ours,
                "reference": reference,
                "difference_map50": ours["map50"] - reference["map50"],
                "difference_map50_95": ours["map50_95"] - reference["map50_95"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

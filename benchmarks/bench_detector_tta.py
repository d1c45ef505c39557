"""Test-time augmentation (flip + multi-scale, fused with WBF) against the single pass.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_detector_tta.py \
        --data ../shared/data/cxr/tbx11k/data.yaml --split val [--model M] [--resamples 1000]

Runs the detector over the split twice in one process, plain and with ``--tta``
(default views: scales 1.0 and 1.25, each also mirrored; WBF, ``box_and_model_avg``), times
both, and prints JSON: mAP@0.5, mAP@0.5:0.95 and per-class AP50 with 95 % bootstrap
intervals over images for each, the paired-bootstrap interval of the difference
(TTA - plain), and the wall-time ratio. On TBX11K's val_list.txt (100 images) this is a
small-sample estimate, and that split chose the bundled model's recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch

from insightray.engine import load_predictor
from insightray.training.detection import collect_detections, load_data_split
from insightray.training.metrics.detection_ci import (
    bootstrap_detection,
    bootstrap_detection_difference,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", default=None)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    args = parser.parse_args()
    dataset = load_data_split(args.data, args.split)
    if args.limit:
        dataset = dataclasses.replace(dataset, records=dataset.records[: args.limit])
    runs = {}
    evaluators = {}
    for name, tta in (("single", False), ("tta", True)):
        predictor = load_predictor(args.model, task="detection", tta=tta)
        predictor.warm_up()
        start = time.perf_counter()
        evaluator = collect_detections(predictor, dataset, batch_size=args.batch)
        seconds = time.perf_counter() - start
        metrics = evaluator.compute().to_dict()
        evaluators[name] = evaluator
        runs[name] = {
            "seconds": seconds,
            "ms_per_image": 1000 * seconds / len(dataset),
            "tta": None if predictor.tta is None else predictor.tta.to_dict(),
            "map50": metrics["map50"],
            "map50_95": metrics["map50_95"],
            "ap50": {row["name"]: row["ap50"] for row in metrics["per_class"]},
            "ci95": bootstrap_detection(evaluator, args.resamples).to_dict(),
        }
    difference = bootstrap_detection_difference(
        evaluators["tta"], evaluators["single"], args.resamples
    )
    report = {
        "data": args.data,
        "split": args.split,
        "images": len(dataset),
        "machine": f"{platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}",
        **runs,
        "tta_minus_single": difference.to_dict(),
        "latency_ratio_tta_over_single": runs["tta"]["seconds"] / runs["single"]["seconds"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

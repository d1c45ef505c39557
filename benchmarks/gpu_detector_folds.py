"""K-fold cross-validation of the detector on ONE GPU: the folds train at the same time.

    python benchmarks/gpu_detector_folds.py --data .devcarry/tbx11k/data.yaml \
        --config configs/detect/tbx11k-yolov5s.yaml --folds 5 --device cuda --out "$OUT"

One YOLOv5s run at batch 32 and 512 px leaves most of an H100 idle, so the K folds run as K
separate processes (each its own CUDA context and streams: ``insightray train detect
--folds K --fold k``), sharing the machine's cores between their data loaders
(``--cores``, default all, split evenly). When all have finished, each fold's last-epoch EMA
model is scored on its held-out fold with and without test-time augmentation (per-fold
metrics, mean and 95 % t-interval over folds, pooled out-of-fold metrics with bootstrap
intervals), and the fold ensemble (``ensemble/card.json``) is scored with and without TTA on
``--test-data`` when given. Without it the ensemble is not scored: every one of the
labelled images trained some of its members. Everything lands in ``--out`` as JSON
(``gpu_folds.json``), with each fold's training log.

The data must travel with the repository copy in an ignored folder (``.devcarry/tbx11k``,
42 MB). Checked on a CPU with tiny settings:

    python benchmarks/gpu_detector_folds.py --data tiny/data.yaml --folds 2 --device cpu \
        --train-args "--model yolov5n --img 64 --epochs 1 --batch 4" --out runs/folds-check
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_concurrently(args: argparse.Namespace, out: Path) -> list[dict[str, object]]:
    """Start one training process per fold, wait for all; return their exit codes and times."""
    workers = max(0, args.cores // args.folds - 1)
    env = os.environ | {
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # Each process gets an even share of the CPU threads: they only feed the GPU.
    env["OMP_NUM_THREADS"] = str(max(1, args.cores // args.folds))
    started = time.perf_counter()
    running = []
    for fold in range(args.folds):
        command = [
            sys.executable,
            "-m",
            "insightray.cli",
            "train",
            "detect",
            "--data",
            str(args.data),
            "--out",
            str(out),
            "--folds",
            str(args.folds),
            "--fold",
            str(fold),
            "--device",
            args.device,
            "--workers",
            str(workers),
        ]
        if args.config:
            command += ["--config", str(args.config)]
        command += shlex.split(args.train_args)
        log = (out / f"train_fold{fold}.log").open("w")
        running.append((fold, subprocess.Popen(command, stdout=log, stderr=log, env=env), log))
    results = []
    for fold, process, log in running:
        code = process.wait()
        log.close()
        results.append(
            {"fold": fold, "exit": code, "seconds": round(time.perf_counter() - started, 1)}
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="YOLO data.yaml (all images)")
    parser.add_argument("--config", type=Path, default=None, help="training config YAML")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-args", default="", help="extra `train detect` options")
    parser.add_argument(
        "--test-data",
        type=Path,
        default=None,
        help="data.yaml whose 'test' (else 'val') split no fold trained on",
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu-folds")))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from insightray.engine.ensemble import write_ensemble_card
    from insightray.training.detection.folds import prepare_folds, summarize_folds

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    folds = prepare_folds(args.data, args.folds, out)
    started = time.perf_counter()
    training = train_concurrently(args, out)
    report: dict[str, object] = {
        "folds": args.folds,
        "device": args.device,
        "training": training,
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    if any(run["exit"] != 0 for run in training):
        report["error"] = "a fold's training failed: see train_fold<k>.log"
    else:
        for tta in (False, True):
            report[f"cross_validation{'_tta' if tta else ''}"] = summarize_folds(
                folds, tta=tta, bootstrap=args.bootstrap, device=args.device
            )
        ensemble = write_ensemble_card(
            [f.run / "model_last" for f in folds],
            out / "ensemble",
            name=f"yolov5s-{args.folds}fold",
        )
        report["ensemble_card"] = str(ensemble)
        report["ensemble"] = (
            evaluate_ensemble(ensemble.parent, args)
            if args.test_data
            else ("not scored: no --test-data, and every labelled image trained some member")
        )
    (out / "gpu_folds.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("cross")}, indent=2))


def evaluate_ensemble(folder: Path, args: argparse.Namespace) -> dict[str, object]:
    """The fold ensemble on held-out test data, with and without TTA."""
    from insightray.engine import load_predictor
    from insightray.training.detection import collect_detections, load_data_split
    from insightray.training.metrics.detection_ci import bootstrap_detection

    try:
        dataset = load_data_split(args.test_data, "test")
    except Exception:
        dataset = load_data_split(args.test_data, "val")
    scores: dict[str, object] = {}
    for tta in (False, True):
        predictor = load_predictor(folder, task="detection", tta=tta, device=args.device)
        start = time.perf_counter()
        evaluator = collect_detections(predictor, dataset, batch_size=8)
        metrics = evaluator.compute().to_dict()
        metrics["ci95"] = bootstrap_detection(evaluator, args.bootstrap).to_dict()
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        scores["tta" if tta else "plain"] = metrics
    return scores


if __name__ == "__main__":
    main()

"""Fracture classifier ablation (same budget per arm) and CPU inference latency.

Ablation: every arm trains with ``insightray.training.fracture.train_fracture`` on the
group-aware train split of the Roboflow bone-fracture set and is compared on the validation
split (ROC AUC with a 95 % group-bootstrap interval); the test split is reported for the
selected model only. Arms run one after another; each writes ``runs/fracture/ablation/<arm>/``.

Latency: median seconds per image of ``FracturePredictor.predict_arrays`` (batch 1, CPU,
preparation included) for the bundled default model against the ResNet-50 baseline architecture
at the same input size, measured in the same run.

Compare: a paired group bootstrap of the AUC difference between two trained arms on the
validation and test splits.

Pointing: how often the Grad-CAM peak of the default model falls inside a fracture box on the
fractured test images, against chance.

Usage:
    python benchmarks/bench_fracture.py ablation --steps 60 --image-size 160
    python benchmarks/bench_fracture.py compare --first lite0-imagenet-bce --second resnet50-bce
    python benchmarks/bench_fracture.py latency --runs 30
    python benchmarks/bench_fracture.py pointing
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insightray.config import data_root
from insightray.imaging.enhance import RadiographEnhancement
from insightray.training.fracture import FractureTrainConfig, train_fracture

DATA = data_root() / "fracture" / "bone_fracture_roboflow"
TRAINING_DATA = (
    "bone_fracture_roboflow (Roboflow Universe 'Science Research 2022: Bone Fracture Detection' "
    "v7): group-aware stratified split by source image (split_seed 0), train 657 images; "
    "selected on the validation split (130 images), test split (151 images) held out"
)
LICENCE = "CC BY 4.0 (Roboflow Universe, Science Research 2022: Bone Fracture Detection v7)"
OUT = Path("runs/fracture/ablation")

#: arm name -> config fields that differ from the shared budget.
ARMS: dict[str, dict[str, Any]] = {
    "resnet50-bce (baseline)": {"model": "resnet50_radiograph"},
    "lite0-imagenet-bce": {"model": "efficientnet_lite0", "pretrained": True},
    "lite0-scratch-bce": {"model": "efficientnet_lite0"},
    "resnet50-cbam-bce": {"model": "resnet50_radiograph", "model_kwargs": {"cbam_stages": [3, 4]}},
    "lite0-imagenet-focal": {"model": "efficientnet_lite0", "pretrained": True, "loss": "focal"},
    "lite0-imagenet-weighted-bce": {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "loss": "weighted_bce",
    },
    "lite0-imagenet-smooth-bce": {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "loss": "smooth_bce",
    },
    "lite0-imagenet-bce-clahe": {
        "model": "efficientnet_lite0",
        "pretrained": True,
        "preprocessing": {"clahe": True},
    },
}


def _slug(name: str) -> str:
    return name.split(" ")[0]


def run_ablation(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    chosen = [name for name in ARMS if not args.arms or _slug(name) in args.arms]
    results_file = OUT / "results.jsonl"
    OUT.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        fields = dict(ARMS[name])
        if "preprocessing" in fields:
            fields["preprocessing"] = RadiographEnhancement(**fields["preprocessing"])
        config = FractureTrainConfig(
            data=str(DATA),
            image_size=args.image_size,
            max_steps=args.steps,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            patience=0,
            lr=args.lr,
            seed=args.seed,
            threads=args.threads,
            cache_dir=str(OUT / "cache"),
            out=str(OUT / f"{_slug(name)}{args.suffix}"),
            data_licence=LICENCE,
            training_data=TRAINING_DATA,
            **fields,
        )
        print(f"=== {name}", flush=True)
        result = train_fracture(config, log=lambda line: print(line, flush=True))
        row = {
            "arm": name + (f" seed {args.seed}" if args.seed else ""),
            "steps": result.steps,
            "best_step": result.best_step,
            "seconds": round(result.seconds, 1),
            "val": result.val.to_dict(),
            "test": None if result.test is None else result.test.to_dict(),
            "card": str(result.card_path),
        }
        with results_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
    print_table(results_file)


def print_table(results_file: Path) -> None:
    rows = [json.loads(line) for line in results_file.read_text().splitlines() if line]
    print("| arm | val AUC [95 % CI] | sens / spec (Youden) | ECE | train s |")
    print("|---|---|---|---|---|")
    for row in rows:
        val = row["val"]
        low, high = val["auc_ci"]
        print(
            f"| {row['arm']} | {val['auc']:.3f} [{low:.3f}, {high:.3f}] | "
            f"{val['sensitivity']:.2f} / {val['specificity']:.2f} | {val['ece']:.3f} | "
            f"{row['seconds']:.0f} |"
        )


def run_compare(args: argparse.Namespace) -> None:
    """Paired group bootstrap of the AUC difference between two trained arms, per split."""
    from insightray.engine import load_predictor
    from insightray.imaging import read_image
    from insightray.training.fracture.dataset import load_fracture_items, split_by_group
    from insightray.training.metrics.roc import bootstrap_auc_difference

    torch.set_num_threads(args.threads)
    splits = split_by_group(load_fracture_items(DATA), seed=0)
    first = load_predictor(str(OUT / args.first / "model"), task="classification")
    second = load_predictor(str(OUT / args.second / "model"), task="classification")
    for split_name in ("val", "test"):
        items = getattr(splits, split_name)
        images = [read_image(item.path).pixels for item in items]
        scores = [
            [r.probability for r in predictor.predict_arrays(images)]
            for predictor in (first, second)
        ]
        difference, low, high = bootstrap_auc_difference(
            [item.label for item in items],
            scores[0],
            scores[1],
            groups=[item.group for item in items],
        )
        print(
            f"{split_name}: AUC({args.first}) - AUC({args.second}) = {difference:+.3f} "
            f"[95 % paired group bootstrap {low:+.3f}, {high:+.3f}], {len(items)} images"
        )


def run_pointing(args: argparse.Namespace) -> None:
    """Grad-CAM pointing game on the fractured test images: is the heatmap's peak in a box?

    The chance level is the mean share of the image covered by the fracture boxes (a peak
    placed uniformly at random).
    """
    from insightray.engine import load_predictor
    from insightray.explain import gradcam_heatmap
    from insightray.imaging import read_image
    from insightray.training.fracture.dataset import load_fracture_items, split_by_group

    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model, task="classification")
    splits = split_by_group(load_fracture_items(DATA), seed=0)
    hits, chance, images = 0, [], 0
    for item in (item for item in splits.test if item.label == 1):
        label_file = DATA / "labels" / f"{item.path.stem}.txt"
        boxes = [
            [float(v) for v in line.split()[1:5]]
            for line in label_file.read_text().splitlines()
            if line.split() and line.split()[0] == "1"  # class 1 is "fracture"
        ]
        pixels = read_image(item.path).pixels
        heat = gradcam_heatmap(predictor, pixels)
        rows, cols = heat.shape
        peak_row, peak_col = np.unravel_index(int(np.argmax(heat)), heat.shape)
        mask = np.zeros(heat.shape, dtype=bool)
        for cx, cy, w, h in boxes:
            top, bottom = int((cy - h / 2) * rows), int(np.ceil((cy + h / 2) * rows))
            left, right = int((cx - w / 2) * cols), int(np.ceil((cx + w / 2) * cols))
            mask[max(top, 0) : bottom, max(left, 0) : right] = True
        hits += bool(mask[peak_row, peak_col])
        chance.append(mask.mean())
        images += 1
    print(
        f"Grad-CAM peak inside a fracture box: {hits}/{images} = {hits / images:.3f} "
        f"(chance {np.mean(chance):.3f}) on the fractured test images"
    )


def run_latency(args: argparse.Namespace) -> None:
    from insightray.engine import load_predictor
    from insightray.engine.classification import FracturePredictor
    from insightray.imaging import read_image
    from insightray.models import create_model

    torch.set_num_threads(args.threads)
    default = load_predictor(args.model, task="classification")
    baseline_model = create_model("resnet50_radiograph", num_classes=1, in_channels=1)
    baseline = FracturePredictor(baseline_model, default.card)
    files = sorted((DATA / "images").glob("*.jpg"))[: args.runs]
    images = [read_image(path).pixels for path in files]
    figures = {}
    for label, predictor in (("default", default), ("resnet50 baseline", baseline)):
        predictor.predict_arrays(images[:2], batch_size=1)  # warm-up
        times = []
        for image in images:
            start = time.perf_counter()
            predictor.predict_arrays([image], batch_size=1)
            times.append(time.perf_counter() - start)
        figures[label] = statistics.median(times)
        print(f"{label}: median {1000 * figures[label]:.1f} ms per image ({len(images)} images)")
    ratio = figures["resnet50 baseline"] / figures["default"]
    print(
        f"default is {ratio:.2f}x the speed of the ResNet-50 baseline at "
        f"{default.card.input_size[0]} px, {args.threads} threads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ablation = sub.add_parser("ablation")
    ablation.add_argument("--steps", type=int, default=60)
    ablation.add_argument("--image-size", type=int, default=160)
    ablation.add_argument("--batch-size", type=int, default=12)
    ablation.add_argument("--eval-every", type=int, default=20)
    ablation.add_argument("--lr", type=float, default=1e-3)
    ablation.add_argument("--seed", type=int, default=0)
    ablation.add_argument("--threads", type=int, default=2)
    ablation.add_argument("--arms", nargs="*", default=[])
    ablation.add_argument("--suffix", default="", help="Run-folder suffix, e.g. -seed1.")
    latency = sub.add_parser("latency")
    latency.add_argument("--model", default=None)
    latency.add_argument("--runs", type=int, default=30)
    latency.add_argument("--threads", type=int, default=2)
    compare = sub.add_parser("compare")
    compare.add_argument("--first", default="lite0-imagenet-bce")
    compare.add_argument("--second", default="resnet50-bce")
    compare.add_argument("--threads", type=int, default=2)
    pointing = sub.add_parser("pointing")
    pointing.add_argument("--model", default=None)
    pointing.add_argument("--threads", type=int, default=2)
    sub.add_parser("table")
    args = parser.parse_args()
    if args.command == "ablation":
        run_ablation(args)
    elif args.command == "latency":
        run_latency(args)
    elif args.command == "compare":
        run_compare(args)
    elif args.command == "pointing":
        run_pointing(args)
    else:
        print_table(OUT / "results.jsonl")
    np.seterr(all="ignore")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

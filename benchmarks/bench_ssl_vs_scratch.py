"""SSL pre-training vs training from scratch for the fracture classifier (GPU scale or small CPU).

Arms (``--arms``), each fine-tuned with the same ``train_fracture`` recipe, steps, batch and
group-aware split:

- ``scratch``: random weights.
- ``ssl``: ``pretrain`` (``--method``) from random weights on every shared radiograph, chest
  (TBX11K, VinDr sample, CR DICOMs) and bone (all fracture images, validation ones included),
  labels unused, then fine-tuned from that backbone (``init_weights``).
- ``imagenet``: the packaged ImageNet EfficientNet-Lite0 weights (``pretrained``).
- ``imagenet_ssl``: the same pre-training started from the ImageNet weights (domain-adaptive
  pre-training), then fine-tuned.

Each pre-training runs once and is reused by every seed and label fraction (and, with
``--reuse-pretrain``, by a later invocation with the same ``--out``). ``--label-fractions``
keeps that share of the training split's source-image groups (stratified, drawn per seed, the
same draw for every arm). Validation AUC (the split that chooses recipes, ``split_seed`` 0) is
reported per arm and fraction as mean and 95 % t-interval over seeds, with the paired difference
of each pre-trained arm from its reference (``ssl - scratch``, ``imagenet_ssl - imagenet``,
``imagenet - scratch``) per seed. The test split is never evaluated here. ``--eval-every 0``
(the default) keeps the trainer's per-epoch validation and best-AUC checkpoint; ``--eval-every``
equal to ``--steps`` scores the last step only (no selection on the reported split).

Usage (one GPU):
    python benchmarks/bench_ssl_vs_scratch.py --arch resnet50_radiograph --method simclr \\
        --pretrain-steps 3000 --steps 2000 --seeds 3 --device cuda --out runs/ssl_bench

Small CPU scale (the run in BENCHMARKS.md; see there for the exact command):
    python benchmarks/bench_ssl_vs_scratch.py --arms scratch,ssl,imagenet,imagenet_ssl \\
        --image-size 96 --pretrain-steps 300 --steps 300 --seeds 3 --threads 1 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insightray.config import data_root
from insightray.models.classification import lite0_imagenet_path
from insightray.training.fracture import FractureTrainConfig, train_fracture
from insightray.training.fracture.dataset import (
    FractureSplits,
    load_fracture_items,
    split_by_group,
)
from insightray.training.ssl import PretrainConfig, pretrain

ARMS = ("scratch", "ssl", "imagenet", "imagenet_ssl")
PAIRS = (("ssl", "scratch"), ("imagenet_ssl", "imagenet"), ("imagenet", "scratch"))
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def interval(values: list[float]) -> dict[str, Any]:
    """Mean and half-width of the 95 % t-interval (0 for one value)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return {"values": values, "mean": mean, "ci": 0.0}
    half = T_95.get(len(values) - 1, 1.96) * np.std(values, ddof=1) / np.sqrt(len(values))
    return {"values": values, "mean": mean, "ci": float(half)}


def subsample(splits: FractureSplits, fraction: float, seed: int) -> FractureSplits:
    """Keep ``fraction`` of the training groups (stratified by group label); no test split."""
    train = splits.train
    if fraction < 1:
        train = split_by_group(train, val_fraction=1 - fraction, test_fraction=0, seed=seed).train
    return FractureSplits(train=train, val=splits.val, test=[])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--arms", default="scratch,ssl", help=f"comma list of {ARMS}")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--pretrain-batch", type=int, default=32)
    parser.add_argument("--pretrain-size", type=int, default=0, help="0: min(image size, 160)")
    parser.add_argument(
        "--reuse-pretrain", action="store_true",
        help="use OUT/pre-<arm>/backbone.safetensors where a previous run left it",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=0, help="0: once per epoch")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--label-fractions", default="1.0", help="e.g. 0.25,1.0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, default=None, help="labelled fracture folder")
    parser.add_argument(
        "--unlabelled", type=Path, nargs="*", default=None,
        help="pre-training folders (default: shared chest, bone and DICOM radiographs)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/ssl_bench"))
    args = parser.parse_args(argv)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; use {ARMS}")
    args.label_fractions = [float(f) for f in args.label_fractions.split(",")]
    if any(not 0 < f <= 1 for f in args.label_fractions):
        parser.error("label fractions must lie in (0, 1]")
    return args


def pretrained_backbones(args: argparse.Namespace, unlabelled: tuple[str, ...]) -> dict[str, str]:
    """Run each pre-training the arms need once; the backbone file per arm."""
    starts = {"ssl": "", "imagenet_ssl": str(lite0_imagenet_path())}
    weights: dict[str, str] = {}
    for arm in (a for a in args.arms if a in starts):
        done = args.out / f"pre-{arm}" / "backbone.safetensors"
        if args.reuse_pretrain and done.is_file():
            print(f"pretrain {arm}: reusing {done}")
            weights[arm] = str(done)
            continue
        begun = time.perf_counter()
        result = pretrain(
            PretrainConfig(
                data=unlabelled, method=args.method, arch=args.arch,
                steps=args.pretrain_steps, batch_size=args.pretrain_batch,
                image_size=args.pretrain_size or min(args.image_size, 160),
                init_weights=starts[arm], device=args.device, out=str(args.out / f"pre-{arm}"),
            )
        )  # fmt: skip
        print(f"pretrain {arm}: loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f} "
              f"in {time.perf_counter() - begun:.0f} s")  # fmt: skip
        weights[arm] = str(result.weights)
    return weights


def summarise(
    args: argparse.Namespace, aucs: dict[str, dict[str, list[float]]],
    seconds: dict[str, list[float]],
) -> dict[str, Any]:  # fmt: skip
    """Intervals per arm and paired differences per label fraction; print and write them."""
    summary: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "results": {}}
    for fraction, per_arm in aucs.items():
        rows: dict[str, Any] = {arm: interval(v) for arm, v in per_arm.items()}
        for arm, reference in PAIRS:
            if arm in per_arm and reference in per_arm:
                diff = [a - b for a, b in zip(per_arm[arm], per_arm[reference], strict=True)]
                rows[f"{arm} - {reference}"] = interval(diff)
        summary["results"][fraction] = rows
        for name, row in rows.items():
            print(f"labels {fraction}: {name}: val AUC {row['mean']:.4f} +- {row['ci']:.4f} "
                  f"over {len(row['values'])} seeds")  # fmt: skip
    summary["seconds_per_finetune"] = {a: float(np.mean(s)) for a, s in seconds.items() if s}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = data_root()
    fracture = args.data or root / "fracture" / "bone_fracture_roboflow"
    chest = (root / "cxr" / "tbx11k" / "images", root / "cxr" / "vinbigdata_sample" / "images")
    shared = (*chest, fracture / "images", *sorted((root / "dicom").glob("cr_*.dcm")))
    unlabelled = tuple(str(p) for p in (args.unlabelled or shared))
    weights = pretrained_backbones(args, unlabelled)
    recipe = split_by_group(load_fracture_items(fracture), val_fraction=0.15, test_fraction=0.15)
    aucs: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, list[float]] = {arm: [] for arm in args.arms}
    summary: dict[str, Any] = {}
    for fraction in args.label_fractions:
        per_arm = aucs.setdefault(str(fraction), {arm: [] for arm in args.arms})
        for seed in range(args.seeds):
            splits = subsample(recipe, fraction, seed)
            for arm in args.arms:
                config = FractureTrainConfig(
                    data=str(fracture), model=args.arch, pretrained=arm == "imagenet",
                    init_weights=weights.get(arm, ""), max_steps=args.steps,
                    batch_size=args.batch, eval_every=args.eval_every,
                    image_size=args.image_size, seed=seed, device=args.device, patience=0,
                    threads=args.threads, cache_dir=str(args.out / "cache"),
                    out=str(args.out / f"{arm}-f{fraction}-s{seed}"),
                )  # fmt: skip
                result = train_fracture(config, log=lambda _line: None, splits=splits)
                per_arm[arm].append(result.val.auc)
                seconds[arm].append(result.seconds)
                print(f"fraction {fraction} seed {seed} {arm}: {len(splits.train)} train "
                      f"images, val AUC {result.val.auc:.4f} ({result.seconds:.0f} s)")  # fmt: skip
        summary = summarise(args, aucs, seconds)  # written after each fraction
    return summary


if __name__ == "__main__":
    main()

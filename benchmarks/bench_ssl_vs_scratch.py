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

``--probe`` adds linear probes (before any fine-tuning) at ``--probe-fractions``: each arm's
backbone, as the fine-tune would start from it (scratch: random weights drawn per seed), is
frozen; the pooled embedding (the input of the classifier's output layer) of every training
and validation image is extracted once through the trainer's own preparation and
normalisation; a logistic regression on standardised embeddings is fitted on the same
per-seed label draw as the fine-tune, its ``C`` chosen by pooled out-of-fold AUC over
group-aware folds of the training part only, and scored by validation AUC (same intervals and
paired differences). Each paired probe difference also gets, per seed, a paired bootstrap
95 % interval over the validation groups (2,000 resamples): with all labels a pre-trained
arm's probe hardly depends on the seed, so the seed interval alone says nothing about the
validation sample. ``--label-fractions ''`` skips fine-tuning.

Usage (one GPU):
    python benchmarks/bench_ssl_vs_scratch.py --arch resnet50_radiograph --method simclr \\
        --pretrain-steps 3000 --steps 2000 --seeds 3 --device cuda --out runs/ssl_bench

Linear probes at three label fractions and fine-tuning at 10 % (BENCHMARKS.md has the run):
    python benchmarks/bench_ssl_vs_scratch.py --arms scratch,ssl,imagenet,imagenet_ssl \\
        --image-size 64 --pretrain-steps 150 --probe --label-fractions 0.1 --steps 200 \\
        --eval-every 200 --seeds 3 --threads 1 --device cpu --out runs/ssl21-C

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
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from insightray.config import data_root
from insightray.models.classification import lite0_imagenet_path
from insightray.training.fracture import FractureTrainConfig, train_fracture
from insightray.training.fracture.dataset import (
    FractureItem,
    FractureSplits,
    load_fracture_items,
    split_by_group,
)
from insightray.training.fracture.folds import group_folds
from insightray.training.fracture.preprocessing import load_prepared
from insightray.training.fracture.trainer import build_classifier, predict_logits
from insightray.training.metrics.roc import bootstrap_auc_difference, roc_auc
from insightray.training.runtime import seed_everything, select_device
from insightray.training.ssl import PretrainConfig, pretrain

ARMS = ("scratch", "ssl", "imagenet", "imagenet_ssl")
PAIRS = (("ssl", "scratch"), ("imagenet_ssl", "imagenet"), ("imagenet", "scratch"))
PROBE_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # logistic-regression C grid
PerArm = dict[str, dict[str, list[float]]]  # fraction -> arm -> one value per seed
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


def pooled_features(
    model: nn.Module, images: NDArray[np.float16], device: torch.device
) -> NDArray[np.float64]:
    """The input of the classifier's output layer (its last ``nn.Linear``) for prepared images.

    Runs :func:`predict_logits` (the trainer's normalisation, batching and eval mode) and
    records what enters the head, so no second preprocessing exists.
    """
    head = [module for module in model.modules() if isinstance(module, nn.Linear)][-1]
    captured: list[NDArray[np.float64]] = []

    def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].reshape(len(inputs[0]), -1).double().cpu().numpy())

    handle = head.register_forward_pre_hook(record)
    try:
        predict_logits(model, images, device)
    finally:
        handle.remove()
    return np.concatenate(captured)


def _probe_model(c: float) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def fit_probe(
    train_x: NDArray[np.float64], train_items: list[FractureItem], val_x: NDArray[np.float64],
    seed: int, folds: int = 5,
) -> tuple[NDArray[np.float64], float]:  # fmt: skip
    """Validation scores of a logistic regression on standardised features, and its ``C``.

    ``C`` (from :data:`PROBE_CS`) maximises the AUC of the out-of-fold scores, pooled over
    ``folds`` stratified group folds of the training part (fewer when it has fewer groups);
    the probe is then refitted on the whole training part. The validation part is used only
    for the returned scores.
    """
    train_y = np.array([item.label for item in train_items])
    held_out = group_folds(train_items, min(folds, len({i.group for i in train_items})), seed)
    best_auc, best_c = -1.0, PROBE_CS[0]
    for c in PROBE_CS:
        out_of_fold = np.empty(len(train_y))
        for held in held_out:
            keep = np.ones(len(train_y), dtype=bool)
            keep[held] = False
            model = _probe_model(c).fit(train_x[keep], train_y[keep])
            out_of_fold[held] = model.decision_function(train_x[held])
        auc = roc_auc(train_y, out_of_fold)
        if auc > best_auc:
            best_auc, best_c = auc, c
    final = _probe_model(best_c).fit(train_x, train_y)
    return np.asarray(final.decision_function(val_x), dtype=np.float64), best_c


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
    parser.add_argument(
        "--label-fractions", default="1.0", help="fine-tune fractions, e.g. 0.25,1.0 ('': none)"
    )
    parser.add_argument("--probe", action="store_true", help="linear probes before fine-tuning")
    parser.add_argument("--probe-fractions", default="0.1,0.25,1.0")
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
    for name in ("label_fractions", "probe_fractions"):
        fractions = [float(f) for f in getattr(args, name).split(",") if f.strip()]
        if any(not 0 < f <= 1 for f in fractions):
            parser.error("label fractions must lie in (0, 1]")
        setattr(args, name, fractions if name == "label_fractions" or args.probe else [])
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


def arm_config(
    args: argparse.Namespace, arm: str, weights: dict[str, str], seed: int, out: Path,
    data: Path,
) -> FractureTrainConfig:  # fmt: skip
    """The fine-tuning settings of ``arm`` (its probe reads the same initial backbone)."""
    return FractureTrainConfig(
        data=str(data), model=args.arch, pretrained=arm == "imagenet",
        init_weights=weights.get(arm, ""), max_steps=args.steps, batch_size=args.batch,
        eval_every=args.eval_every, image_size=args.image_size, seed=seed,
        device=args.device, patience=0, threads=args.threads,
        cache_dir=str(args.out / "cache"), out=str(out),
    )  # fmt: skip


def probe_arms(
    args: argparse.Namespace, recipe: FractureSplits, weights: dict[str, str], data: Path
) -> dict[str, Any]:
    """Each arm's linear probe per fraction and seed: validation AUC rows (``probe``), the
    chosen ``C`` (``probe_C``) and the paired group bootstraps (``probe_val_bootstrap``)."""
    device = select_device(args.device, hint="use --device cpu")
    base = arm_config(args, "scratch", weights, 0, args.out / "probe", data)
    images = {
        part: load_prepared(items, base.preprocessing, base.image_size, base.cache_dir)
        for part, items in (("train", recipe.train), ("val", recipe.val))
    }
    val_y = np.array([item.label for item in recipe.val])
    val_groups = [item.group for item in recipe.val]
    row_of = {item.path: row for row, item in enumerate(recipe.train)}
    aucs: PerArm = {str(f): {arm: [] for arm in args.arms} for f in args.probe_fractions}
    chosen: PerArm = {str(f): {arm: [] for arm in args.arms} for f in args.probe_fractions}
    scores: dict[tuple[str, str], list[NDArray[np.float64]]] = {}
    for arm in args.arms:
        features: dict[str, NDArray[np.float64]] = {}
        for seed in range(args.seeds):
            if not features or arm == "scratch":  # only scratch's backbone depends on seed
                begun = time.perf_counter()
                seed_everything(seed)
                model = build_classifier(arm_config(args, arm, weights, seed, Path(base.out), data))
                model = model.to(device)
                features = {part: pooled_features(model, x, device) for part, x in images.items()}
                print(f"probe {arm} seed {seed}: {features['train'].shape[1]} features of "
                      f"{len(images['train'])} + {len(images['val'])} images in "
                      f"{time.perf_counter() - begun:.0f} s")  # fmt: skip
            for fraction in args.probe_fractions:
                train = subsample(recipe, fraction, seed).train
                rows = [row_of[item.path] for item in train]
                val_scores, c = fit_probe(features["train"][rows], train, features["val"], seed)
                scores.setdefault((str(fraction), arm), []).append(val_scores)
                aucs[str(fraction)][arm].append(roc_auc(val_y, val_scores))
                chosen[str(fraction)][arm].append(c)
                print(f"probe fraction {fraction} seed {seed} {arm}: {len(train)} train images, "
                      f"C {c:g}, val AUC {aucs[str(fraction)][arm][-1]:.4f}")  # fmt: skip
    bootstrap: dict[str, dict[str, list[dict[str, float]]]] = {}
    for fraction in aucs:
        for arm, reference in PAIRS:
            if (fraction, arm) in scores and (fraction, reference) in scores:
                bootstrap.setdefault(fraction, {})[f"{arm} - {reference}"] = [
                    dict(zip(("difference", "low", "high"), bootstrap_auc_difference(
                        val_y, a, b, groups=val_groups, seed=seed), strict=True))
                    for seed, (a, b) in enumerate(
                        zip(scores[fraction, arm], scores[fraction, reference], strict=True))
                ]  # fmt: skip
    return {
        "probe": {fraction: paired_rows(per_arm) for fraction, per_arm in aucs.items()},
        "probe_C": chosen,
        "probe_val_bootstrap": bootstrap,
    }


def paired_rows(per_arm: dict[str, list[float]]) -> dict[str, Any]:
    """Interval of each arm and of each paired difference in :data:`PAIRS` present."""
    rows: dict[str, Any] = {arm: interval(v) for arm, v in per_arm.items() if v}
    for arm, reference in PAIRS:
        if per_arm.get(arm) and per_arm.get(reference):
            diff = [a - b for a, b in zip(per_arm[arm], per_arm[reference], strict=True)]
            rows[f"{arm} - {reference}"] = interval(diff)
    return rows


def show(label: str, rows: dict[str, Any]) -> None:
    """Print one fraction's rows of :func:`paired_rows`."""
    for name, row in rows.items():
        print(f"{label}: {name}: val AUC {row['mean']:.4f} +- {row['ci']:.4f} "
              f"over {len(row['values'])} seeds")  # fmt: skip


def summarise(
    args: argparse.Namespace, aucs: PerArm, seconds: dict[str, list[float]],
    probes: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Intervals per arm and paired differences per label fraction; write them."""
    summary: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "results": {}}
    summary.update(probes or {})
    for fraction, per_arm in aucs.items():
        summary["results"][fraction] = paired_rows(per_arm)
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
    aucs: PerArm = {}
    seconds: dict[str, list[float]] = {arm: [] for arm in args.arms}
    probes = probe_arms(args, recipe, weights, fracture) if args.probe_fractions else None
    summary = summarise(args, aucs, seconds, probes)
    for fraction, rows in summary.get("probe", {}).items():
        show(f"probe labels {fraction}", rows)
        for pair, per_seed in summary["probe_val_bootstrap"].get(fraction, {}).items():
            each = [f"{b['difference']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}]" for b in per_seed]
            print(f"probe labels {fraction}: {pair}: paired group bootstrap per seed "
                  + " / ".join(each))  # fmt: skip
    for fraction in args.label_fractions:
        per_arm = aucs.setdefault(str(fraction), {arm: [] for arm in args.arms})
        for seed in range(args.seeds):
            splits = subsample(recipe, fraction, seed)
            for arm in args.arms:
                out = args.out / f"{arm}-f{fraction}-s{seed}"
                config = arm_config(args, arm, weights, seed, out, fracture)
                result = train_fracture(config, log=lambda _line: None, splits=splits)
                per_arm[arm].append(result.val.auc)
                seconds[arm].append(result.seconds)
                print(f"fraction {fraction} seed {seed} {arm}: {len(splits.train)} train "
                      f"images, val AUC {result.val.auc:.4f} ({result.seconds:.0f} s)")  # fmt: skip
        summary = summarise(args, aucs, seconds, probes)  # written after each fraction
        show(f"labels {fraction}", summary["results"][str(fraction)])
    return summary


if __name__ == "__main__":
    main()

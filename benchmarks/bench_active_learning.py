"""Active-learning simulation for the fracture classifier: random vs entropy vs BALD vs core-set
vs BADGE.

CPU scale, so the model that is retrained each round is a small head (1280 -> 64 -> 1 with
dropout 0.3) on frozen ImageNet EfficientNet-Lite0 features (the packaged weights, adapted to
one channel; never trained on fractures), not the whole network. Every image of the Roboflow
bone-fracture set is prepared as the fracture trainer prepares it and embedded once.

Protocol: per seed, a group-aware split (``split_by_group``, 30 % of source-image groups held
out as the test set; the other images are the unlabelled pool). Start from ``--start`` labelled
pool images (drawn at random with the seed), then each round acquire ``--batch`` images with the
strategy, retrain the head from scratch and record the test ROC AUC. Strategies score with
:mod:`insightray.active.acquisition` (BALD from ``--passes`` MC-dropout passes of the head's
own dropout; core-set = k-center greedy on the frozen embeddings; BADGE = k-means++ seeding
on the gradient embeddings of the head's last layer, from its 64 hidden units). Mean and 95 %
t-interval over seeds per round; "labels saved" = labels random needs to reach its own AUC at
half the pool, minus the labels the strategy needs to reach that AUC (first round at or above
it).

Usage:
    nice -n 10 python benchmarks/bench_active_learning.py --seeds 3 --out runs/active
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
from torch import nn

from insightray.active import (
    badge_select,
    bald_scores,
    entropy_scores,
    k_center_greedy,
    random_scores,
)
from insightray.active.classifier import ClassifierProbe
from insightray.config import data_root
from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.training.fracture import FractureTrainConfig
from insightray.training.fracture.dataset import load_fracture_items, split_by_group
from insightray.training.fracture.preprocessing import load_prepared
from insightray.training.fracture.trainer import build_classifier
from insightray.training.metrics.roc import roc_auc

STRATEGIES = ("random", "entropy", "bald", "coreset", "badge")  # --strategies picks some
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262}


def embed_all(data: Path, size: int, cache: Path) -> tuple[NDArray[np.float32], list[Any]]:
    """Frozen ImageNet Lite0 embeddings of every image (cached in ``cache``)."""
    items = load_fracture_items(data)
    target = cache / f"lite0-imagenet-{size}.npy"
    if target.is_file():
        return np.load(target), items
    config = FractureTrainConfig(data=str(data), pretrained=True, image_size=size)
    probe = ClassifierProbe(build_classifier(config))
    prepared = load_prepared(items, config.preprocessing, size, cache)
    parts = []
    for start in range(0, len(items), 32):
        chunk = prepared[start : start + 32].astype(np.float32)
        parts.append(probe(torch.from_numpy((chunk[:, None] - GRAY_MEAN) / GRAY_STD)).embeddings)
    embeddings = np.concatenate(parts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(target, embeddings)
    return embeddings, items


def train_head(x: NDArray[np.float32], y: NDArray[np.int64], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 1))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    positives = max(float(yt.sum()), 1.0)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(yt) - positives) / positives))
    generator = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(150):
        index = torch.randint(len(xt), (min(32, len(xt)),), generator=generator)
        loss = loss_fn(head(xt[index]).squeeze(1), yt[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


def mc_samples(head: nn.Module, x: NDArray[np.float32], passes: int) -> NDArray[np.float64]:
    head.train()  # dropout on
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        samples = [torch.sigmoid(head(xt).squeeze(1)).numpy() for _ in range(passes)]
    head.eval()
    return np.stack(samples).astype(np.float64)  # type: ignore[no-any-return]


def predict(head: nn.Module, x: NDArray[np.float32]) -> NDArray[np.float64]:
    with torch.inference_mode():
        return torch.sigmoid(head(torch.from_numpy(x)).squeeze(1)).numpy().astype(np.float64)


def acquire(
    strategy: str,
    head: nn.Module,
    x: NDArray[np.float32],
    labelled: list[int],
    pool: list[int],
    batch: int,
    seed: int,
    passes: int,
) -> list[int]:
    if strategy == "coreset":
        picked, _ = k_center_greedy(x[pool], batch, x[labelled], seed)
        return [pool[i] for i in picked]
    if strategy == "badge":
        assert isinstance(head, nn.Sequential)  # train_head's: Linear, ReLU, Dropout, Linear
        with torch.inference_mode():  # the last layer's input: the head's hidden units
            hidden = head[1](head[0](torch.from_numpy(x[pool])))
            p = torch.sigmoid(head[3](hidden).squeeze(1)).numpy().astype(np.float64)
        picked, _ = badge_select(p, hidden.numpy(), batch, seed)
        return [pool[i] for i in picked]
    if strategy == "random":
        scores = random_scores(len(pool), seed)
    elif strategy == "entropy":
        scores = entropy_scores(predict(head, x[pool]))
    else:
        scores = bald_scores(mc_samples(head, x[pool], passes))
    return [pool[i] for i in np.argsort(-scores, kind="stable")[:batch]]


def run_arm(
    strategy: str, x: NDArray[np.float32], y: NDArray[np.int64], split: dict[str, list[int]],
    seed: int, args: argparse.Namespace,
) -> list[tuple[int, float]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    pool = list(split["pool"])
    labelled = [int(i) for i in rng.choice(pool, args.start, replace=False)]
    pool = [i for i in pool if i not in set(labelled)]
    test = split["test"]
    curve = []
    while True:
        head = train_head(x[labelled], y[labelled], seed)
        curve.append((len(labelled), roc_auc(y[test], predict(head, x[test]))))
        if len(labelled) >= args.max_labels or not pool:
            return curve
        new = acquire(strategy, head, x, labelled, pool, args.batch, seed + len(labelled),
                      args.passes)  # fmt: skip
        labelled += new
        chosen = set(new)
        pool = [i for i in pool if i not in chosen]


def summarise(curves: dict[str, list[list[tuple[int, float]]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for strategy, runs in curves.items():
        labels = [n for n, _ in runs[0]]
        aucs = np.array([[auc for _, auc in run] for run in runs])
        mean = aucs.mean(0)
        half = (T_95.get(len(runs) - 1, 2.0) * aucs.std(0, ddof=1) / np.sqrt(len(runs))
                if len(runs) > 1 else np.zeros_like(mean))  # fmt: skip
        table[strategy] = {"labels": labels, "mean": mean.tolist(), "ci": half.tolist()}
    return table


def labels_saved(table: dict[str, Any], pool_size: int) -> dict[str, Any]:
    reference = table["random"]
    labels = np.array(reference["labels"])
    at_half = int(np.argmin(np.abs(labels - pool_size / 2)))
    goal, goal_labels = reference["mean"][at_half], int(labels[at_half])
    out: dict[str, Any] = {"random_auc_at_half_pool": goal, "half_pool_labels": goal_labels}
    for strategy, row in table.items():
        reached = [n for n, m in zip(row["labels"], row["mean"], strict=True) if m >= goal]
        out[strategy] = None if not reached else goal_labels - reached[0]
    return out


def plot(table: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, row in table.items():
        mean, ci = np.array(row["mean"]), np.array(row["ci"])
        ax.plot(row["labels"], mean, label=strategy)
        ax.fill_between(row["labels"], mean - ci, mean + ci, alpha=0.2)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("test ROC AUC (mean, 95 % CI over seeds)")
    ax.set_title("Fracture: active learning on frozen Lite0 features")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--start", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--max-labels", type=int, default=400)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--out", type=Path, default=Path("runs/active"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = data_root() / "fracture" / "bone_fracture_roboflow"
    x, items = embed_all(data, args.image_size, args.out / "cache")
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    y = np.array([item.label for item in items], np.int64)
    index = {id(item): i for i, item in enumerate(items)}
    print(f"embedded {len(items)} images in {time.perf_counter() - started:.0f} s")
    curves: dict[str, list[list[tuple[int, float]]]] = {}
    pool_sizes = []
    for seed in range(args.seeds):
        splits = split_by_group(items, val_fraction=0.0, test_fraction=0.3, seed=seed)
        split = {"pool": [index[id(i)] for i in splits.train],
                 "test": [index[id(i)] for i in splits.test]}  # fmt: skip
        pool_sizes.append(len(split["pool"]))
        for strategy in args.strategies.split(","):
            curve = run_arm(strategy, x, y, split, seed, args)
            curves.setdefault(strategy, []).append(curve)
            print(f"seed {seed} {strategy}: " + " ".join(f"{n}:{a:.3f}" for n, a in curve))
    table = summarise(curves)
    saved = labels_saved(table, int(np.mean(pool_sizes)))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(table, args.out / "active_learning_fracture.png")
    summary = {"table": table, "labels_saved": saved, "pool_size": pool_sizes,
               "seconds": round(time.perf_counter() - started, 1), "args": vars(args) | {
                   "out": str(args.out)}}  # fmt: skip
    (args.out / "active_learning_fracture.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(saved))
    for strategy, row in table.items():
        cells = [f"{m:.3f}±{c:.3f}" for m, c in zip(row["mean"], row["ci"], strict=True)]
        print(strategy, dict(zip(row["labels"], cells, strict=True)))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

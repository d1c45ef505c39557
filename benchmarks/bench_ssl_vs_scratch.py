"""SSL pre-training vs training from scratch for the fracture classifier (prepared; GPU scale).

Arm ``scratch``: ``train_fracture`` from random weights. Arm ``ssl``: ``insightray pretrain``
(``--method``) on every shared radiograph, chest and bone, labels unused, then the same
``train_fracture`` run started from the backbone (``init_weights``). Same steps, batch and
split per arm; ``--seeds`` seeds; validation AUC (the split that chooses recipes) reported as
mean and 95 % t-interval over seeds. The test split is left alone here.

Not run at the reported scale: on the shared 2-core CPU one arm-seed of 2,000 steps takes
hours. Tiny CPU check: ``--pretrain-steps 2 --steps 2 --seeds 1 --image-size 64``.

Usage (one GPU):
    python benchmarks/bench_ssl_vs_scratch.py --arch resnet50_radiograph --method simclr \\
        --pretrain-steps 3000 --steps 2000 --seeds 3 --device cuda --out runs/ssl_bench
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from insightray.config import data_root
from insightray.training.fracture import FractureTrainConfig, train_fracture
from insightray.training.ssl import PretrainConfig, pretrain

T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/ssl_bench"))
    args = parser.parse_args()
    root = data_root()
    fracture = root / "fracture" / "bone_fracture_roboflow"
    unlabelled = (str(root / "cxr"), str(fracture / "images"), str(root / "dicom"))
    ssl = pretrain(
        PretrainConfig(
            data=unlabelled,
            method=args.method,
            arch=args.arch,
            steps=args.pretrain_steps,
            image_size=min(args.image_size, 160),
            device=args.device,
            out=str(args.out / "ssl"),
        )
    )
    aucs: dict[str, list[float]] = {"scratch": [], "ssl": []}
    for seed in range(args.seeds):
        for arm, init in (("scratch", ""), ("ssl", str(ssl.weights))):
            config = FractureTrainConfig(
                data=str(fracture), model=args.arch, init_weights=init, max_steps=args.steps,
                image_size=args.image_size, seed=seed, device=args.device, patience=0,
                out=str(args.out / f"{arm}-{seed}"),
            )  # fmt: skip
            aucs[arm].append(train_fracture(config).val.auc)
    summary = {}
    for arm, values in aucs.items():
        half = T_95.get(len(values) - 1, 2.0) * np.std(values, ddof=1) / np.sqrt(len(values))
        summary[arm] = {"aucs": values, "mean": float(np.mean(values)), "ci": float(half)}
        print(f"{arm}: val AUC {np.mean(values):.4f} +- {half:.4f} over {len(values)} seeds")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

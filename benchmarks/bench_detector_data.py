"""Detector training data: augmented samples per second with and without the in-memory cache.

One process, the training augmentation of a config (mosaic, affine, flip, intensity) on the
TBX11K training split, ``(epoch, index)`` items as the trainer's loader asks for them. The
reference is the same pipeline decoding four image files per mosaic (``cache_images`` off),
alternated with the cached one (ABAB) in the same run.

Usage:
    .venv/bin/python benchmarks/bench_detector_data.py [--config configs/detect/...yaml]
        [--data ../shared/data/cxr/tbx11k/data.yaml] [--items 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from insightray.training.detection import DetectionTrainData, load_train_config, load_train_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/detect/tbx11k-yolov5s.yaml")
    parser.add_argument("--data", default="../shared/data/cxr/tbx11k/data.yaml")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = load_train_config(args.config, data=args.data)
    train = load_train_val(config.data).train
    best: dict[bool, float] = {}
    setup: dict[bool, float] = {}
    for _ in range(args.rounds):
        for cache in (False, True):
            began = time.perf_counter()
            data = DetectionTrainData(
                train, config.image_size, config.channels, config.augment, cache=cache
            )
            setup[cache] = time.perf_counter() - began
            began = time.perf_counter()
            for index in range(args.items):
                data[(1, index % len(data))]
            rate = args.items / (time.perf_counter() - began)
            best[cache] = max(best.get(cache, 0.0), rate)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, one process; "
        f"{config.image_size} px, {args.items} items, best of {args.rounds} rounds"
    )
    print("| images decoded | samples/s | setup s | speed-up |")
    print("|---|---|---|---|")
    print(f"| per mosaic (reference) | {best[False]:.0f} | {setup[False]:.1f} | 1.00x |")
    print(
        f"| once, kept in memory | {best[True]:.0f} | {setup[True]:.1f} | "
        f"{best[True] / best[False]:.2f}x |"
    )


if __name__ == "__main__":
    main()

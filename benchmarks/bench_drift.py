"""Drift tests: power on bone X-rays against TBX11K, false alarms on random TBX11K halves.

Measures every TBX11K image (train and val lists, 600 chest X-rays) and every bone X-ray of the
fracture set with the chest detector's embedding (as ``insightray monitor drift --reference
DIR --current DIR`` does), then runs :func:`insightray.monitoring.drift.compare_tables`:

- TBX11K against the bone X-rays (should report drift);
- ``--splits`` random halves of TBX11K against each other (should not; the share that does is
  the false-alarm rate, to compare with ``--alpha``).

The embedding's PCA is fitted on both sets pooled, inside ``compare_tables``.

    python benchmarks/bench_drift.py --splits 20 --alpha 0.05
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from insightray.imaging import image_paths
from insightray.monitoring.drift import DriftReport, compare_tables
from insightray.monitoring.embedding import Embedder
from insightray.monitoring.profile import Sample, measure

Index = NDArray[np.int64]
SHARED = Path(__file__).resolve().parents[1] / "../shared/data"


def _compare(a: Sample, ia: Index, b: Sample, ib: Index, alpha: float, perms: int) -> DriftReport:
    table_a, table_b = a.table.subset(ia), b.table.subset(ib)
    return compare_tables(table_a, table_b, alpha=alpha, permutations=perms)


def main() -> None:
    """Measure both sets, run the comparisons, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=SHARED.resolve())
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--model", default="cxr-tbx11k-yolov5s")
    args = parser.parse_args()
    embedder = Embedder.from_model(args.model)
    started = time.perf_counter()
    tbx = measure(image_paths(args.shared / "cxr/tbx11k"), embedder)
    bones = measure(image_paths(args.shared / "fracture/bone_fracture_roboflow"), embedder)
    print(f"measured {len(tbx.table)} + {len(bones.table)} images "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    everything = np.arange(len(tbx.table))
    report = _compare(
        tbx, everything, bones, np.arange(len(bones.table)), args.alpha, args.permutations
    )
    print(f"TBX11K vs bone X-rays: drift {report.drift}; drifted features "
          f"{report.to_dict()['drifted_features']}")  # fmt: skip
    rng = np.random.default_rng(0)
    alarms, minimum_p = [], []
    for _ in range(args.splits):
        order = rng.permutation(everything)
        half = len(order) // 2
        split = _compare(tbx, order[:half], tbx, order[half:], args.alpha, args.permutations)
        alarms.append(split.drift)
        minimum_p.append(min(test.p_adjusted for test in split.tests))
        if split.drift:
            print("  false alarm on:", split.to_dict()["drifted_features"])
    print(f"random TBX11K halves: {sum(alarms)} of {args.splits} report drift "
          f"(false-alarm rate {sum(alarms) / args.splits:.2f}, level {args.alpha}); "
          f"smallest corrected p per split: median {np.median(minimum_p):.3f}")  # fmt: skip
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
    print(
        platform.machine(), "cpu flags:", " ".join(f for f in flags.split() if f.startswith("avx"))
    )


if __name__ == "__main__":
    main()

"""The service's drift window in distribution: false alarms, PSI and the cost of a comparison.

For each bundled model's reference profile, ``--splits`` times: a random reference sample of
300 profile images (the size :class:`~insightray.monitoring.window.DriftWindow` keeps; the
service draws one with seed 0) against a window of ``n`` *other* profile images drawn at
random (n = 50, 100, 200), compared as the service does
(:func:`~insightray.monitoring.drift.compare_tables`, alpha 0.05, 200 permutations).
Reports the share of comparisons that say drift (the false-alarm rate per comparison), the
largest PSI over the features (median and maximum over splits), and the seconds per
comparison. No images are read: the profiles hold every feature.

    python benchmarks/bench_drift_window.py --splits 20
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from insightray.models.catalog import resolve_card
from insightray.monitoring.drift import compare_tables
from insightray.monitoring.profile import load_profile
from insightray.monitoring.window import DriftWindow

MODELS = ("cxr-tbx11k-yolov5s", "fracture-roboflow-lite0")


def main() -> None:
    """Run the comparisons and print one table row per model and window size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {args.splits} splits per row")
    print("| model | window | drift reported | false-alarm rate | PSI max median | PSI max "
          "largest | MMD p smallest | s per comparison |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        profile = load_profile(resolve_card(name, default=""))
        assert profile is not None, name
        full = profile.table
        cap = DriftWindow(full).reference_cap
        for size in args.sizes:
            drifts, psi_max, p_min, seconds = 0, [], [], []
            for split in range(args.splits):
                order = np.random.default_rng(1000 + split).permutation(len(full))
                reference = full.subset(np.sort(order[:cap]))
                current = full.subset(np.sort(order[cap : cap + size]))
                started = time.perf_counter()
                report = compare_tables(reference, current, alpha=0.05, permutations=200, seed=0)
                seconds.append(time.perf_counter() - started)
                drifts += report.drift
                psi_max.append(max(t.psi for t in report.tests if t.psi is not None))
                p_min.append(min(t.p_value for t in report.tests if t.test == "mmd"))
            print(f"| {name} | {size} | {drifts} of {args.splits} | "
                  f"{drifts / args.splits:.2f} | {np.median(psi_max):.3f} | {max(psi_max):.3f} | "
                  f"{min(p_min):.3f} | {np.median(seconds):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()

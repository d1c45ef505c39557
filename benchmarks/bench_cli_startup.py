"""Start-up time of `insightray --help`: this checkout against another one (e.g. a release).

Each run is a fresh interpreter (`python -m insightray.cli --help`) with ``PYTHONPATH`` set to
the checkout, so both use the same virtual environment; runs alternate between the two and the
median of each is reported, with their ratio and the processor's flags.

Usage:
    git worktree add /tmp/before <commit>
    python benchmarks/bench_cli_startup.py --baseline /tmp/before [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_up(checkout: Path) -> float:
    """Seconds from starting the interpreter to `--help` having printed."""
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "insightray.cli", "--help"],
        cwd=checkout,
        env=environment,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def cpu_flags() -> str:
    """The lscpu model name and the vector flags that matter for speed."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Model name")), "?")  # fmt: skip
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("Flags")), [])  # fmt: skip
    wanted = [f for f in flags if f.startswith(("avx", "amx", "fma")) or f == "vnni"]
    return f"{model}; {os.cpu_count()} CPUs; {' '.join(wanted)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="The other checkout.")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"this": [], "baseline": []}
    for _ in range(args.runs):
        times["this"].append(start_up(ROOT))
        times["baseline"].append(start_up(args.baseline.resolve()))
    this, baseline = (statistics.median(times[key]) for key in ("this", "baseline"))
    print(f"machine: {cpu_flags()}")
    print(f"insightray --help, median of {args.runs}: this {this:.2f} s, baseline "
          f"{baseline:.2f} s ({args.baseline}); {baseline / this:.1f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()

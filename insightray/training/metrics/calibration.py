"""Calibration of predicted probabilities: expected calibration error and reliability diagrams.

The probabilities are cut into ``bins`` equal-width bins on ``[0, 1]`` (the last bin includes
1.0). In each non-empty bin, the mean predicted probability (confidence) is compared with the
observed fraction of positives; the expected calibration error (ECE) is the mean absolute gap
weighted by the share of images in the bin (Naeini et al., 2015; Guo et al., 2017, in its
binary form on the positive-class probability).

Example:
    >>> expected_calibration_error([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3], bins=2)
    0.175
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from insightray.errors import ConfigError

__all__ = [
    "ReliabilityBins",
    "expected_calibration_error",
    "plot_reliability_diagram",
    "reliability_bins",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin counts, mean confidence and observed positive rate (NaN in empty bins)."""

    edges: FloatArray
    counts: NDArray[np.int64]
    confidence: FloatArray
    observed: FloatArray


def reliability_bins(
    labels: ArrayLike, probabilities: ArrayLike, bins: int = 10
) -> ReliabilityBins:
    """Bin the probabilities and measure each bin (see the module docstring).

    Raises:
        ConfigError: Lengths differ, probabilities lie outside ``[0, 1]`` or ``bins < 1``.
    """
    truth = np.asarray(labels, dtype=np.float64).ravel()
    values = np.asarray(probabilities, dtype=np.float64).ravel()
    if truth.shape != values.shape:
        raise ConfigError("calibration", "labels and probabilities differ in length", "")
    if values.size and (values.min() < 0 or values.max() > 1 or not np.isfinite(values).all()):
        raise ConfigError("calibration", "probabilities must lie in [0, 1]", "apply a sigmoid")
    if bins < 1:
        raise ConfigError("bins", f"{bins} is below 1", "use e.g. 10")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=values, minlength=bins) / counts
        observed = np.bincount(index, weights=truth, minlength=bins) / counts
    return ReliabilityBins(edges, counts, confidence, observed)


def expected_calibration_error(
    labels: ArrayLike, probabilities: ArrayLike, bins: int = 10
) -> float:
    """Count-weighted mean ``|observed - confidence|`` over non-empty bins; 0.0 for no data."""
    table = reliability_bins(labels, probabilities, bins)
    total = int(table.counts.sum())
    if total == 0:
        return 0.0
    filled = table.counts > 0
    gaps = np.abs(table.observed[filled] - table.confidence[filled])
    return float(np.round((gaps * table.counts[filled]).sum() / total, 12))


def plot_reliability_diagram(
    labels: ArrayLike, probabilities: ArrayLike, path: str | Path, bins: int = 10, title: str = ""
) -> Path:
    """Write a reliability diagram PNG (observed vs. predicted, with a count histogram).

    Example:
        >>> plot_reliability_diagram([0, 1], [0.2, 0.7], "reliability.png")  # doctest: +SKIP
        PosixPath('reliability.png')
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = reliability_bins(labels, probabilities, bins)
    ece = expected_calibration_error(labels, probabilities, bins)
    centres = (table.edges[:-1] + table.edges[1:]) / 2
    width = 1.0 / bins
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = table.counts > 0
    top.bar(
        centres[filled],
        table.observed[filled],
        width=width * 0.9,
        color="#4c72b0",
        edgecolor="black",
        label="observed",
    )
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.plot(table.confidence[filled], table.observed[filled], "o", color="#dd8452", ms=4)
    top.set_ylabel("fraction fractured")
    top.set_ylim(0, 1)
    top.set_title(title or f"Reliability (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, table.counts, width=width * 0.9, color="gray")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target

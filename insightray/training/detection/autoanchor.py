"""AutoAnchor: measure how well anchors fit a data set's boxes and refit them when they do not.

A box fits an anchor when both side ratios ``max(r, 1 / r)`` stay below ``threshold`` (the
loss's ``anchor_t``), i.e. the worse of ``min(r, 1 / r)`` over width and height is above
``1 / threshold``. The best possible recall (BPR) is the share of boxes that fit at least one
anchor: a box that fits none is never a positive during training.

Box sizes are ``(N, 2)`` widths and heights in pixels at the training image size; callers scale
normalised labels by the image size first.

Example:
    >>> import torch
    >>> anchors = torch.tensor([[10.0, 13.0], [16.0, 30.0], [33.0, 23.0]])
    >>> best_possible_recall(anchors, torch.tensor([[12.0, 12.0], [200.0, 200.0]]))
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

FloatArray = npt.NDArray[np.float64]

#: Boxes smaller than this (pixels, both sides) are left out of the k-means fit.
_MIN_FIT_SIZE = 2.0


def _as_wh(values: Tensor | npt.ArrayLike) -> FloatArray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    return array


def _worst_side_ratio(anchors: FloatArray, box_wh: FloatArray) -> FloatArray:
    """``(N, K)``: for each box and anchor, the smaller of the w and h ``min(r, 1 / r)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = box_wh[:, None, :] / anchors[None, :, :]
        closeness = np.minimum(ratio, 1.0 / ratio).min(axis=2)
    result: FloatArray = np.nan_to_num(closeness, nan=0.0, posinf=0.0, neginf=0.0)
    return result


def _fitness(anchors: FloatArray, box_wh: FloatArray, threshold: float) -> float:
    best = _worst_side_ratio(anchors, box_wh).max(axis=1)
    return float((best * (best > 1.0 / threshold)).mean())


def best_possible_recall(
    anchors: Tensor | npt.ArrayLike, box_wh: Tensor | npt.ArrayLike, threshold: float = 4.0
) -> float:
    """Share of boxes with at least one anchor within the side-ratio ``threshold``.

    Args:
        anchors: Anchor sizes in pixels, any shape ending in 2 (e.g. ``(3, 3, 2)``).
        box_wh: ``(N, 2)`` box sizes in pixels.
        threshold: Side-ratio threshold, the loss's ``anchor_t``.

    Returns:
        BPR in ``[0, 1]`` (0 for no boxes).

    Example:
        >>> best_possible_recall([[10.0, 10.0]], [[30.0, 30.0], [50.0, 50.0]])
        0.5
    """
    wh = _as_wh(box_wh)
    if len(wh) == 0:
        return 0.0
    best = _worst_side_ratio(_as_wh(anchors), wh).max(axis=1)
    return float((best > 1.0 / threshold).mean())


def anchors_above_threshold(
    anchors: Tensor | npt.ArrayLike, box_wh: Tensor | npt.ArrayLike, threshold: float = 4.0
) -> float:
    """Mean number of anchors per box within the side-ratio ``threshold``.

    Each fitting anchor is a positive match in the loss, so this is the average number of
    anchors (per cell) trained on each box.

    Example:
        >>> anchors_above_threshold([[10.0, 10.0], [30.0, 30.0]], [[20.0, 20.0], [200.0, 200.0]])
        1.0
    """
    wh = _as_wh(box_wh)
    if len(wh) == 0:
        return 0.0
    fits = _worst_side_ratio(_as_wh(anchors), wh) > 1.0 / threshold
    return float(fits.sum(axis=1).mean())


def _kmeans(points: FloatArray, k: int, rng: np.random.Generator, steps: int = 50) -> FloatArray:
    """Plain Lloyd k-means with k-means++ seeding."""
    centres = points[[int(rng.integers(len(points)))]]
    while len(centres) < k:
        dist_sq = ((points[:, None] - centres[None]) ** 2).sum(axis=2).min(axis=1)
        total = dist_sq.sum()
        if total > 0:
            pick = int(rng.choice(len(points), p=dist_sq / total))
        else:
            pick = int(rng.integers(len(points)))
        centres = np.vstack((centres, points[pick]))
    for _ in range(steps):
        labels = ((points[:, None] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        moved = centres.copy()
        for j in range(k):
            members = points[labels == j]
            if len(members):
                moved[j] = members.mean(axis=0)
        if np.allclose(moved, centres):
            break
        centres = moved
    return centres


def fit_anchors(
    box_wh: Tensor | npt.ArrayLike,
    n: int = 9,
    img_size: int = 640,
    threshold: float = 4.0,
    generations: int = 1000,
    seed: int = 0,
    mutation_prob: float = 0.9,
    sigma: float = 0.1,
) -> Tensor:
    """Fit ``n`` anchors to box sizes: k-means, then evolution of the anchor fitness.

    K-means runs on sizes whitened by their per-axis standard deviation (boxes under 2 px on
    both sides are left out). The evolution then multiplies the anchors by random factors
    ``1 + N(0, 1) * sigma * U(0, 1)`` (each value mutated with probability ``mutation_prob``,
    factors clipped to ``[0.3, 3]``, anchors kept within ``[2, img_size]`` px) and keeps a
    mutant when it raises the fitness: the mean over boxes of the best anchor's worst-side
    ratio, counted only when above ``1 / threshold``.

    Args:
        box_wh: ``(N, 2)`` box sizes in pixels at the training image size.
        n: Number of anchors (levels x anchors per level).
        img_size: Training image size in pixels; the largest anchor side allowed.
        threshold: Side-ratio threshold, the loss's ``anchor_t``.
        generations: Evolution steps (0 keeps the k-means result).
        seed: Seed of the random generator; same inputs and seed give the same anchors.
        mutation_prob: Chance that each anchor value is mutated in a step.
        sigma: Scale of the mutation.

    Returns:
        ``(n, 2)`` float32 anchors in pixels, sorted by area (smallest first).

    Example:
        >>> wh = torch.rand(200, 2) * 100 + 5
        >>> fit_anchors(wh, n=3, generations=50, seed=1).shape
        torch.Size([3, 2])
    """
    wh = _as_wh(box_wh)
    wh = wh[np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)]
    points = wh[(wh >= _MIN_FIT_SIZE).any(axis=1)]
    if len(np.unique(points, axis=0)) < n:
        raise ValueError(f"need at least {n} distinct box sizes of 2 px or more to fit anchors")
    rng = np.random.default_rng(seed)
    scale = points.std(axis=0)
    scale[scale == 0] = 1.0
    anchors = _kmeans(points / scale, n, rng) * scale
    anchors = anchors.clip(_MIN_FIT_SIZE, img_size)

    best = _fitness(anchors, wh, threshold)
    for _ in range(generations):
        factor = np.ones_like(anchors)
        while (factor == 1).all():  # make sure something changes
            mutate = rng.random(anchors.shape) < mutation_prob
            noise = rng.standard_normal(anchors.shape) * rng.random() * sigma
            factor = (mutate * noise + 1).clip(0.3, 3.0)
        candidate = (anchors * factor).clip(_MIN_FIT_SIZE, img_size)
        score = _fitness(candidate, wh, threshold)
        if score > best:
            best, anchors = score, candidate
    anchors = anchors[np.argsort(anchors.prod(axis=1), kind="stable")]
    return torch.from_numpy(anchors.astype(np.float32))


@dataclass(frozen=True)
class AnchorCheck:
    """Result of :func:`check_anchors`.

    Attributes:
        anchors: Anchors to train with, same shape as the ones checked.
        bpr_before: BPR of the anchors checked.
        bpr_after: BPR of ``anchors`` (equal to ``bpr_before`` when not replaced).
        replaced: Whether ``anchors`` are newly fitted ones.
    """

    anchors: Tensor
    bpr_before: float
    bpr_after: float
    replaced: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (a run's ``anchors.json``)."""
        return {
            "bpr_before": self.bpr_before,
            "bpr_after": self.bpr_after,
            "replaced": self.replaced,
            "anchors": self.anchors.tolist(),
        }


def check_anchors(
    anchors: Tensor,
    box_wh: Tensor | npt.ArrayLike,
    threshold: float = 4.0,
    min_bpr: float = 0.98,
    img_size: int = 640,
    generations: int = 1000,
    seed: int = 0,
) -> AnchorCheck:
    """Keep ``anchors`` if their BPR reaches ``min_bpr``, else refit and keep the better set.

    Args:
        anchors: ``(num_levels, num_anchors, 2)`` anchors in pixels, finest level first.
        box_wh: ``(N, 2)`` box sizes in pixels at the training image size.
        threshold: Side-ratio threshold, the loss's ``anchor_t``.
        min_bpr: BPR at or above which the anchors are kept as they are.
        img_size: Training image size in pixels.
        generations: Evolution steps of :func:`fit_anchors`.
        seed: Seed of :func:`fit_anchors`.

    Returns:
        The anchors to use (refitted ones sorted by area, so smallest go to the finest level),
        the BPR before and after, and whether they were replaced. Anchors are also kept
        when there are fewer distinct box sizes than anchors to fit.

    Example:
        >>> default = torch.tensor([[[10, 13], [16, 30], [33, 23]],
        ...                         [[30, 61], [62, 45], [59, 119]],
        ...                         [[116, 90], [156, 198], [373, 326]]], dtype=torch.float32)
        >>> check_anchors(default, default.reshape(-1, 2)).replaced
        False
    """
    bpr_before = best_possible_recall(anchors, box_wh, threshold)
    if bpr_before >= min_bpr:
        return AnchorCheck(anchors, bpr_before, bpr_before, replaced=False)
    count = int(anchors.numel() // 2)
    try:
        fitted = fit_anchors(box_wh, count, img_size, threshold, generations, seed)
    except ValueError:
        return AnchorCheck(anchors, bpr_before, bpr_before, replaced=False)
    bpr_after = best_possible_recall(fitted, box_wh, threshold)
    if bpr_after <= bpr_before:
        return AnchorCheck(anchors, bpr_before, bpr_before, replaced=False)
    new_anchors = fitted.reshape(anchors.shape).to(device=anchors.device, dtype=anchors.dtype)
    return AnchorCheck(new_anchors, bpr_before, bpr_after, replaced=True)

"""The labelling queue: rank unlabelled images by how much a label would teach the model.

:func:`rank_for_labelling` takes a loaded predictor (:func:`insightray.engine.
load_predictor`), image files and a strategy, and returns the ``n`` most informative images,
best first. Strategies per task:

============  ==============================================  ===========================
strategy      classifier                                      detector
============  ==============================================  ===========================
entropy       predictive entropy                              most undecided box (entropy)
margin        1 - |p(fracture) - p(no fracture)|              most undecided box (margin)
bald          MC-dropout mutual information                   -
coreset       k-center greedy on embeddings                   -
badge         k-means++ on last-layer gradient embeddings     -
tta           -                                               flip disagreement
random        uniform (the baseline)                          uniform
============  ==============================================  ===========================

Images already labelled (``labelled``, compared as strings with ``paths``) are left out of
the ranking and, for ``coreset``, count as covered. A ``reader`` other than the file reader
lets the service rank its stored studies by id.

Example:
    >>> from insightray.engine import load_predictor  # doctest: +SKIP
    >>> queue = rank_for_labelling(load_predictor(task="classification"), paths,
    ...                            "entropy", n=50)  # doctest: +SKIP
    >>> queue.to_dict()["items"][0]  # doctest: +SKIP
    {'path': '.../img_0132.jpg', 'score': 0.6931}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.active.acquisition import (
    badge_select,
    bald_scores,
    entropy_scores,
    k_center_greedy,
    margin_scores,
    random_scores,
)
from insightray.active.classifier import ClassifierProbe, ProbeOutput
from insightray.active.detection import detection_uncertainty
from insightray.engine.classification import FracturePredictor
from insightray.engine.detection import DetectionPredictor
from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging import read_image

__all__ = [
    "CLASSIFIER_STRATEGIES",
    "DETECTOR_STRATEGIES",
    "LabelQueue",
    "QueueItem",
    "rank_for_labelling",
]

CLASSIFIER_STRATEGIES = ("entropy", "margin", "bald", "coreset", "badge", "random")
DETECTOR_STRATEGIES = ("entropy", "margin", "tta", "random")


Reader = Callable[[str], NDArray[Any]]


def read_pixels(path: str) -> NDArray[Any]:
    """The default reader: a file's pixels through :func:`~insightray.imaging.read_image`."""
    return read_image(path).pixels


@dataclass(frozen=True)
class QueueItem:
    """One image to label (a file path, or whatever key the reader takes, such as a study
    id) and its informativeness (higher: label it sooner)."""

    path: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"path": self.path, "score": round(self.score, 6)}


@dataclass(frozen=True)
class LabelQueue:
    """A ranked queue, most informative first."""

    strategy: str
    model: str
    items: tuple[QueueItem, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"strategy", "model", "items": [{"path", "score"}...]}``."""
        return {
            "strategy": self.strategy,
            "model": self.model,
            "items": [item.to_dict() for item in self.items],
        }


def _probe_images(
    predictor: FracturePredictor,
    keys: Sequence[str],
    probe: ClassifierProbe,
    options: dict[str, Any],
    passes: int = 0,
) -> ProbeOutput:
    parts: list[ProbeOutput] = []
    batch_size, reader = options["batch_size"], options["reader"]
    for start in range(0, len(keys), batch_size):
        chunk = keys[start : start + batch_size]
        tensors = [predictor.prepare(reader(key)).tensor for key in chunk]
        parts.append(probe(torch.from_numpy(np.stack(tensors)), passes))
    if not parts:
        return ProbeOutput(np.zeros(0), np.zeros((passes, 0)), np.zeros((0, 0), np.float32))
    return ProbeOutput(
        np.concatenate([p.probabilities for p in parts]),
        np.concatenate([p.samples for p in parts], axis=1),
        np.concatenate([p.embeddings for p in parts]),
    )


def _classifier_scores(
    predictor: FracturePredictor,
    pool: Sequence[str],
    labelled: Sequence[str],
    strategy: str,
    n: int,
    options: dict[str, Any],
) -> tuple[list[int], NDArray[np.float64]]:
    probe = ClassifierProbe(predictor.model, options["dropout"], options["seed"])
    passes = options["passes"] if strategy == "bald" else 0
    out = _probe_images(predictor, pool, probe, options, passes)
    if strategy == "coreset":
        covered = _probe_images(predictor, labelled, probe, options)
        centres = covered.embeddings if len(labelled) else None
        return k_center_greedy(out.embeddings, n, centres, options["seed"])
    if strategy == "badge":
        return badge_select(out.probabilities, out.embeddings, n, options["seed"])
    if strategy == "bald":
        scores = bald_scores(out.samples)
    elif strategy == "margin":
        scores = margin_scores(out.probabilities)
    else:
        scores = entropy_scores(out.probabilities)
    return _top(scores, n), scores


def _detector_scores(
    predictor: DetectionPredictor,
    pool: Sequence[str],
    strategy: str,
    n: int,
    options: dict[str, Any],
) -> tuple[list[int], NDArray[np.float64]]:
    signals = []
    batch_size, reader = options["batch_size"], options["reader"]
    for start in range(0, len(pool), batch_size):
        images = [reader(key) for key in pool[start : start + batch_size]]
        signals.extend(detection_uncertainty(predictor, images, batch_size))
    scores = np.array([getattr(s, strategy) for s in signals], np.float64)
    return _top(scores, n), scores


def _top(scores: NDArray[np.float64], n: int) -> list[int]:
    # Stable sort on the negated score: ties keep the input (path) order.
    return [int(i) for i in np.argsort(-scores, kind="stable")[:n]]


def rank_for_labelling(
    predictor: FracturePredictor | DetectionPredictor,
    paths: Sequence[str | Path],
    strategy: str,
    n: int = 50,
    *,
    labelled: Sequence[str | Path] = (),
    passes: int = 20,
    dropout: float = 0.2,
    seed: int = 0,
    batch_size: int = 8,
    reader: Reader = read_pixels,
) -> LabelQueue:
    """The ``n`` most informative of ``paths`` under ``strategy`` (see the module docstring).

    Args:
        predictor: A fracture classifier or a detector from ``load_predictor``.
        paths: Unlabelled image files (DICOM, PNG, JPEG), or keys ``reader`` reads.
        strategy: One of :data:`CLASSIFIER_STRATEGIES` or :data:`DETECTOR_STRATEGIES`.
        n: Queue length.
        labelled: Images already labelled: excluded, and covered for ``coreset``.
        passes: MC-dropout passes for ``bald``.
        dropout: Dropout probability of those passes.
        seed: Seed of ``random``, the dropout masks, core-set's first pick and BADGE's draws.
        batch_size: Images per forward pass.
        reader: Maps a path (key) to 2-D pixels; by default reads the file.

    Raises:
        ConfigError: A strategy the model's task does not offer, or ``n`` below 1.
        InputNotFoundError: No unlabelled image is left.
    """
    if n < 1:
        raise ConfigError(f"n {n}", "the queue needs at least one item", "use e.g. 50")
    detector = isinstance(predictor, DetectionPredictor)
    offered = DETECTOR_STRATEGIES if detector else CLASSIFIER_STRATEGIES
    if strategy not in offered:
        kind = "detector" if detector else "classifier"
        raise ConfigError(f"strategy {strategy!r}", f"not offered for a {kind}", f"use {offered}")
    if strategy != "random" and not detector and not isinstance(predictor, FracturePredictor):
        raise ConfigError(predictor.card.name, f"{strategy} needs the classifier's PyTorch "
                          "network (dropout, gradients), not an ONNX graph",
                          "rank with the PyTorch parent of this model")  # fmt: skip
    done = sorted({str(p) for p in labelled})
    pool = sorted({str(p) for p in paths} - set(done))
    if not pool:
        raise InputNotFoundError("label queue", "no unlabelled image is left", "add images")
    options = {
        "passes": passes,
        "dropout": dropout,
        "seed": seed,
        "batch_size": batch_size,
        "reader": reader,
    }
    if strategy == "random":
        scores = random_scores(len(pool), seed)
        order = _top(scores, n)
    elif isinstance(predictor, DetectionPredictor):
        order, scores = _detector_scores(predictor, pool, strategy, n, options)
    else:
        order, scores = _classifier_scores(predictor, pool, done, strategy, n, options)
    if strategy in ("coreset", "badge"):  # scores: the pick-time distances, in pick order
        items = tuple(QueueItem(pool[i], float(s)) for i, s in zip(order, scores, strict=True))
    else:
        items = tuple(QueueItem(pool[i], float(scores[i])) for i in order)
    return LabelQueue(strategy, f"{predictor.card.name} {predictor.card.version}", items)

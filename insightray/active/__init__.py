"""Active learning: which unlabelled images a person should label next.

- :mod:`~insightray.active.acquisition`: entropy, margin, MC-dropout BALD, core-set
  (k-center greedy), BADGE (k-means++ on gradient embeddings) and random scores, pure NumPy.
- :mod:`~insightray.active.classifier`: probabilities, last-layer MC-dropout samples and
  embeddings from any of our classifiers.
- :mod:`~insightray.active.detection`: a detector's image-level uncertainty (box scores and
  flip-TTA disagreement).
- :mod:`~insightray.active.queue`: :func:`rank_for_labelling`, the ranked labelling queue
  behind ``insightray label queue``.
"""

from __future__ import annotations

from insightray.active.acquisition import (
    badge_select,
    bald_scores,
    entropy_scores,
    k_center_greedy,
    margin_scores,
    random_scores,
)
from insightray.active.queue import (
    CLASSIFIER_STRATEGIES,
    DETECTOR_STRATEGIES,
    LabelQueue,
    QueueItem,
    rank_for_labelling,
)

__all__ = [
    "CLASSIFIER_STRATEGIES",
    "DETECTOR_STRATEGIES",
    "LabelQueue",
    "QueueItem",
    "badge_select",
    "bald_scores",
    "entropy_scores",
    "k_center_greedy",
    "margin_scores",
    "random_scores",
    "rank_for_labelling",
]

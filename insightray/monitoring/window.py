"""A rolling window of what a model saw recently, compared with its reference profile.

A :class:`DriftWindow` keeps the last ``size`` images' numeric features (the guard's image
statistics and DICOM categories, the model's raw embedding, its outputs, the guard's verdict:
no pixels, no identifiers) and, every ``every`` new images once it holds ``minimum``,
compares them with the profile's images through
:func:`~insightray.monitoring.drift.compare_tables` (KS / chi-squared with PSI per feature,
MMD on the embedding, Benjamini-Hochberg). Its :meth:`~DriftWindow.figures` are cheap (the
last comparison is cached), so a metrics scrape never runs a test.

Example:
    >>> from insightray.monitoring.profile import load_profile  # doctest: +SKIP
    >>> window = DriftWindow(load_profile(card_path).table, size=200)  # doctest: +SKIP
    >>> if window.add(observation.features, observation.embeddings,
    ...               observation.verdicts, outputs):  # doctest: +SKIP
    ...     window.evaluate()
    >>> window.figures().drift  # doctest: +SKIP
    False
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.monitoring.drift import compare_tables
from insightray.monitoring.features import CATEGORICAL, FeatureTable, ImageFeatures
from insightray.monitoring.guard import Verdict

__all__ = ["SCORE_FEATURES", "DriftWindow", "WindowFigures"]

FloatArray = NDArray[np.float64]
#: The output feature whose mean is reported as the window's score (the first present).
SCORE_FEATURES = ("output_probability", "output_max_score")


@dataclass(frozen=True)
class WindowFigures:
    """A window now and its last comparison with the reference.

    Attributes:
        images: Images in the window.
        ood_rate: Share of them the guard flagged.
        score_mean: Mean of the model's score (:data:`SCORE_FEATURES`); ``None`` if none.
        tested: Whether a comparison has run (the window reached its minimum).
        drift: The last comparison's corrected verdict (``False`` before any).
        psi: Per feature, the last comparison's population stability index.
        embedding_p_value: The last MMD permutation p-value of the embedding (uncorrected).
        tested_images: Images in the window when it was last compared.
    """

    images: int
    ood_rate: float | None
    score_mean: float | None
    tested: bool = False
    drift: bool = False
    psi: Mapping[str, float] = field(default_factory=dict)
    embedding_p_value: float | None = None
    tested_images: int = 0

    @property
    def psi_max(self) -> float | None:
        """The largest PSI over the features; ``None`` before a comparison."""
        return max(self.psi.values(), default=None)


@dataclass(frozen=True)
class _Row:
    continuous: dict[str, float]
    categorical: dict[str, str]
    embedding: NDArray[np.float32]
    flagged: bool


class DriftWindow:
    """The last ``size`` images of one model, tested against its reference every ``every``.

    Args:
        reference: The profile's feature table (raw embedding).
        size: Images kept.
        minimum: Images needed before the first comparison.
        every: New images between comparisons.
        alpha: Level of the corrected tests.
        permutations: Permutations of the MMD test.
        reference_cap: At most this many reference images are compared (a seeded sample),
            so a comparison stays about a second on a CPU core.
        seed: Seed of the reference sample and of the permutations.

    Raises:
        ConfigError: ``minimum`` is below 2 or above ``size``, or ``every`` below 1.
    """

    def __init__(
        self,
        reference: FeatureTable,
        *,
        size: int = 200,
        minimum: int = 50,
        every: int = 25,
        alpha: float = 0.05,
        permutations: int = 200,
        reference_cap: int = 300,
        seed: int = 0,
    ) -> None:
        if not 2 <= minimum <= size or every < 1:
            raise ConfigError(
                "drift window",
                f"size {size}, minimum {minimum}, every {every}",
                "use 2 <= minimum <= size and every >= 1",
            )
        if len(reference) > reference_cap:
            chosen = np.random.default_rng(seed).permutation(len(reference))[:reference_cap]
            reference = reference.subset(np.sort(chosen))
        self.reference, self.reference_cap = reference, reference_cap
        self.minimum, self.every = minimum, every
        self.alpha, self.permutations, self.seed = alpha, permutations, seed
        self._rows: deque[_Row] = deque(maxlen=size)
        self._since = 0  # images added since the last comparison was due
        self._due_once = False
        self._tested: WindowFigures | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        features: Sequence[ImageFeatures],
        embeddings: FloatArray,
        verdicts: Sequence[Verdict],
        outputs: Sequence[Mapping[str, float]],
    ) -> bool:
        """Append a batch (one entry per image); returns whether a comparison is due."""
        with self._lock:
            for image, embedding, verdict, output in zip(
                features, embeddings, verdicts, outputs, strict=True
            ):
                continuous = {**image.continuous, **{k: float(v) for k, v in output.items()}}
                row = _Row(
                    continuous,
                    dict(image.categorical),
                    np.asarray(embedding, dtype=np.float32),
                    bool(verdict.warnings),
                )
                self._rows.append(row)
            self._since += len(features)
            due = len(self._rows) >= self.minimum and (
                not self._due_once or self._since >= self.every
            )
            if due:
                self._since, self._due_once = 0, True
            return due

    def evaluate(self) -> WindowFigures:
        """Compare the window with the reference now (about a second) and keep the result."""
        with self._lock:
            rows = list(self._rows)
        if len(rows) < self.minimum:
            return self.figures()
        report = compare_tables(
            self.reference,
            _table(rows),
            alpha=self.alpha,
            permutations=self.permutations,
            seed=self.seed,
        )
        psi = {test.feature: test.psi for test in report.tests if test.psi is not None}
        mmd = [test.p_value for test in report.tests if test.test == "mmd"]
        tested = WindowFigures(
            len(rows),
            None,
            None,
            tested=True,
            drift=report.drift,
            psi=psi,
            embedding_p_value=mmd[0] if mmd else None,
            tested_images=len(rows),
        )
        with self._lock:
            self._tested = tested
        return self.figures()

    def figures(self) -> WindowFigures:
        """The window's size, OOD rate and mean score now, with the last comparison."""
        with self._lock:
            rows = list(self._rows)
            tested = self._tested
        scores = [_score(row) for row in rows]
        known = [score for score in scores if score is not None]
        now = WindowFigures(
            len(rows),
            sum(row.flagged for row in rows) / len(rows) if rows else None,
            float(np.mean(known)) if known else None,
        )
        if tested is None:
            return now
        return dataclasses.replace(
            tested, images=now.images, ood_rate=now.ood_rate, score_mean=now.score_mean
        )


def _score(row: _Row) -> float | None:
    for name in SCORE_FEATURES:
        if name in row.continuous:
            return row.continuous[name]
    return None


def _table(rows: Sequence[_Row]) -> FeatureTable:
    names = sorted(set.intersection(*(set(row.continuous) for row in rows)))
    return FeatureTable(
        {name: np.asarray([row.continuous[name] for row in rows]) for name in names},
        {name: [row.categorical[name] for row in rows] for name in CATEGORICAL},
        np.stack([row.embedding for row in rows]).astype(np.float64),
    )

"""Prometheus metrics of one app: its own registry, so several apps in a process never clash.

Series: requests and their latency per route template (never the raw path, which holds ids),
predictions and their latency per model version, batch sizes, queue depth, cache hits and
misses, and the out-of-distribution guard's outcomes and scores. Live performance from
readers' feedback (:class:`FeedbackFigures`, read from the database at each scrape through
:meth:`ServiceMetrics.watch_feedback`, so every replica reports the same figures): judged and
accepted findings, precision, agreement, recent agreement, and the retraining trigger. The
rolling drift windows of this process (:meth:`ServiceMetrics.watch_drift`, figures cached by
:class:`~insightray.serving.hosting.drift.DriftMonitor`): images in the window, OOD rate, mean
score, and the last comparison's verdict, PSI per feature and embedding MMD p-value.

Example:
    >>> metrics = ServiceMetrics()
    >>> metrics.observe_request("GET", "/healthz", 200, 0.001)
    >>> b"insightray_requests_total" in metrics.render()
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from insightray.monitoring.window import WindowFigures

__all__ = ["CONTENT_TYPE", "FeedbackFigures", "ServiceMetrics"]

#: The media type of :meth:`ServiceMetrics.render` (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_OOD_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 100.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


@dataclass(frozen=True)
class FeedbackFigures:
    """Readers' verdicts on one model version.

    Attributes:
        model: The model's name.
        version: Its version.
        judged: Per kind (``box``, ``label``): (verdicts, accepted verdicts).
        recent_agreement: Accepted share of the last N verdicts; ``None`` with fewer.
        retraining_needed: Whether the recent agreement is below the threshold now.
        triggers: How many times it crossed below the threshold.
    """

    model: str
    version: str
    judged: dict[str, tuple[int, int]] = field(default_factory=dict)
    recent_agreement: float | None = None
    retraining_needed: bool = False
    triggers: int = 0

    @property
    def precision(self) -> float | None:
        """Accepted boxes / judged boxes; ``None`` without judged boxes."""
        judged, accepted = self.judged.get("box", (0, 0))
        return accepted / judged if judged else None

    @property
    def agreement(self) -> float | None:
        """Accepted findings / judged findings (boxes and labels); ``None`` without any."""
        judged = sum(n for n, _ in self.judged.values())
        return sum(ok for _, ok in self.judged.values()) / judged if judged else None


class _FeedbackCollector(Collector):
    """Series computed at each scrape from :class:`FeedbackFigures`."""

    def __init__(self, figures: Callable[[], list[FeedbackFigures]]) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time: no fixed description at registration

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        judged = GaugeMetricFamily(
            "insightray_feedback_judged",
            "Findings readers judged (accept, reject, correct), by kind (box, label).",
            labels=[*labels, "kind"],
        )
        accepted = GaugeMetricFamily(
            "insightray_feedback_accepted",
            "Findings readers accepted, by kind (box, label).",
            labels=[*labels, "kind"],
        )
        precision = GaugeMetricFamily(
            "insightray_feedback_precision",
            "Accepted boxes / judged boxes, from readers' feedback.",
            labels=labels,
        )
        agreement = GaugeMetricFamily(
            "insightray_feedback_agreement",
            "Accepted findings / judged findings (boxes and labels), from readers' feedback.",
            labels=labels,
        )
        recent = GaugeMetricFamily(
            "insightray_feedback_recent_agreement",
            "Agreement over the last INSIGHTRAY_RETRAIN_WINDOW verdicts.",
            labels=labels,
        )
        needed = GaugeMetricFamily(
            "insightray_retraining_needed",
            "1 while the recent agreement is below INSIGHTRAY_RETRAIN_AGREEMENT or the drift "
            "window has drifted.",
            labels=labels,
        )
        triggers = CounterMetricFamily(
            "insightray_retraining_triggers",
            "Times the retraining trigger fired (agreement fell below "
            "INSIGHTRAY_RETRAIN_AGREEMENT, or a drift window turned to drift).",
            labels=labels,
        )
        for figure in self.figures():
            key = [figure.model, figure.version]
            for kind, (count, ok) in sorted(figure.judged.items()):
                judged.add_metric([*key, kind], count)
                accepted.add_metric([*key, kind], ok)
            for family, value in (
                (precision, figure.precision),
                (agreement, figure.agreement),
                (recent, figure.recent_agreement),
            ):
                if value is not None:
                    family.add_metric(key, value)
            needed.add_metric(key, 1.0 if figure.retraining_needed else 0.0)
            triggers.add_metric(key, figure.triggers)
        yield from (judged, accepted, precision, agreement, recent, needed, triggers)


class _DriftCollector(Collector):
    """Series of the drift windows, from their cached figures at each scrape."""

    def __init__(self, figures: Callable[[], list[tuple[str, str, WindowFigures]]]) -> None:
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]

        def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=[*labels, *extra])

        images = gauge("insightray_drift_window_images", "Images in this replica's window.")
        ood = gauge("insightray_drift_ood_rate", "Share of the window's images the guard flagged.")
        score = gauge(
            "insightray_drift_score_mean",
            "Mean model score over the window (fracture probability or best box score).",
        )
        drift = gauge(
            "insightray_drift_detected",
            "1 when the window's last comparison with the reference profile found drift.",
        )
        psi_max = gauge(
            "insightray_drift_psi_max", "Largest population stability index over the features."
        )
        psi = gauge("insightray_drift_psi", "Population stability index per feature.", ("feature",))
        mmd = gauge(
            "insightray_drift_embedding_p_value",
            "Permutation p-value of the MMD test on the model's embedding (uncorrected).",
        )
        for model, version, figures in self.figures():
            key = [model, version]
            images.add_metric(key, figures.images)
            for family, value in ((ood, figures.ood_rate), (score, figures.score_mean)):
                if value is not None:
                    family.add_metric(key, value)
            if not figures.tested:
                continue
            drift.add_metric(key, 1.0 if figures.drift else 0.0)
            for feature, value in sorted(figures.psi.items()):
                psi.add_metric([*key, feature], value)
            if figures.psi_max is not None:
                psi_max.add_metric(key, figures.psi_max)
            if figures.embedding_p_value is not None:
                mmd.add_metric(key, figures.embedding_p_value)
        yield from (images, ood, score, drift, psi_max, psi, mmd)


class ServiceMetrics:
    """The service's metrics in a private :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ood = Counter(
            "insightray_ood_images_total",
            "Images checked by the out-of-distribution guard, by outcome (ok, flagged).",
            ("model", "version", "outcome"),
            registry=self.registry,
        )
        self.ood_score = Histogram(
            "insightray_ood_score",
            "Out-of-distribution scores (1 is the guard's threshold).",
            ("model", "version"),
            buckets=_OOD_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "insightray_requests_total",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "insightray_request_latency_seconds",
            "HTTP request latency by method and route template.",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "insightray_predictions_total",
            "Predictions by task, model, version and role (served, shadow).",
            ("task", "model", "version", "role"),
            registry=self.registry,
        )
        self.prediction_latency = Histogram(
            "insightray_prediction_latency_seconds",
            "Time from queueing to result per model version.",
            ("task", "model", "version"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "insightray_batch_size",
            "Items per inference batch.",
            ("model", "version"),
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "insightray_queue_depth",
            "Requests waiting for a batch.",
            ("model", "version"),
            registry=self.registry,
        )
        self.cache = Counter(
            "insightray_cache_total",
            "Result cache lookups by outcome (hit, miss).",
            ("model", "version", "outcome"),
            registry=self.registry,
        )

    def watch_feedback(self, figures: Callable[[], list[FeedbackFigures]]) -> None:
        """Expose readers' feedback: ``figures`` is called at each scrape (a database read)."""
        self.registry.register(_FeedbackCollector(figures))

    def watch_drift(self, figures: Callable[[], list[tuple[str, str, WindowFigures]]]) -> None:
        """Expose the drift windows: ``figures`` (cached, no test runs) at each scrape."""
        self.registry.register(_DriftCollector(figures))

    def observe_ood(self, model: str, version: str, score: float | None, flagged: bool) -> None:
        """Count one guarded image (flagged or not) and its out-of-distribution score."""
        self.ood.labels(model, version, "flagged" if flagged else "ok").inc()
        if score is not None:
            self.ood_score.labels(model, version).observe(score)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_latency.labels(method, route).observe(seconds)

    def observe_prediction(
        self, task: str, model: str, version: str, seconds: float, *, shadow: bool = False
    ) -> None:
        """Count one prediction (served or shadow) and its latency."""
        self.predictions.labels(task, model, version, "shadow" if shadow else "served").inc()
        self.prediction_latency.labels(task, model, version).observe(seconds)

    def observe_cache(self, model: str, version: str, hit: bool) -> None:
        """Count a cache lookup."""
        self.cache.labels(model, version, "hit" if hit else "miss").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)

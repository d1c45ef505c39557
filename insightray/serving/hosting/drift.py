"""Rolling drift windows of the image models, one per model version, inside this process.

Every image a guarded model version analyses (``POST /v1/studies/{id}/analyze``, the Open
Inference Protocol, shadow runs) adds a row to that version's
:class:`~insightray.monitoring.window.DriftWindow`: the features the out-of-distribution guard
already measured (image statistics, DICOM categories, the embedding of the same forward
pass) and the model's outputs at its operating point. Numbers only: no pixels, no
identifiers. Every ``drift_every`` images (once it holds ``drift_min_images``) the window is
compared with the model's reference profile in a background thread; ``/metrics`` reads the
last comparison (:meth:`ServiceMetrics.watch_drift
<insightray.serving.hosting.metrics.ServiceMetrics.watch_drift>`). When a comparison's verdict
changes, ``on_change(name, version, drifted)`` runs (the retraining trigger).

The windows live in the process: with several replicas each has its own window, fed by the
requests it served; Prometheus scrapes each replica and the series carry its ``instance``.

Example:
    >>> monitor = DriftMonitor(settings, on_change=None)  # doctest: +SKIP
    >>> observe = monitor.observer(entry, runner.guard, runner.outputs)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from insightray.errors import InsightRayError
from insightray.monitoring.guard import Observation, OodGuard
from insightray.monitoring.window import DriftWindow, WindowFigures
from insightray.serving.hosting.rollout import ModelEntry
from insightray.serving.settings import ServeSettings

__all__ = ["DriftMonitor"]

_log = logging.getLogger(__name__)

#: ``on_change(model name, version, drifted)``.
OnChange = Callable[[str, str, bool], object]


class DriftMonitor:
    """The drift windows of one app, and the thread that compares them.

    Args:
        settings: ``drift_window`` (0: off), ``drift_min_images`` and ``drift_every``.
        on_change: Called (in the comparing thread) when a version's verdict changes.
    """

    def __init__(self, settings: ServeSettings, on_change: OnChange | None = None) -> None:
        self.settings = settings
        self.on_change = on_change
        self._windows: dict[tuple[str, str], DriftWindow] = {}
        self._verdicts: dict[tuple[str, str], bool] = {}
        self._pending: dict[tuple[str, str], Future[None]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="drift")

    def observer(
        self,
        entry: ModelEntry,
        guard: OodGuard | None,
        outputs: Callable[[Any], Mapping[str, float]],
    ) -> Callable[[Observation], None] | None:
        """What the guard of ``entry`` should call with each batch's measurements;
        ``None`` when windows are off or the model has no reference profile.

        ``outputs`` turns one result into its output features (at the operating point).
        """
        if guard is None or not self.settings.drift_window:
            return None
        key = (entry.name, entry.version)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = DriftWindow(
                    guard.profile.table,
                    size=self.settings.drift_window,
                    minimum=self.settings.drift_min_images,
                    every=self.settings.drift_every,
                )
                self._windows[key] = window

        def observe(observation: Observation) -> None:
            rows = [outputs(result) for result in observation.results]
            due = window.add(
                observation.features, observation.embeddings, observation.verdicts, rows
            )
            if due:
                self._schedule(key, window)

        return observe

    def figures(self) -> list[tuple[str, str, WindowFigures]]:
        """``(model, version, figures)`` of every window (cheap: no test runs)."""
        with self._lock:
            windows = sorted(self._windows.items())
        return [(name, version, window.figures()) for (name, version), window in windows]

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the comparisons scheduled so far have finished (tests, shutdown)."""
        with self._lock:
            pending = list(self._pending.values())
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        """Stop the comparing thread (a comparison under way finishes)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _schedule(self, key: tuple[str, str], window: DriftWindow) -> None:
        with self._lock:
            running = self._pending.get(key)
            if running is not None and not running.done():
                return  # one comparison per window at a time; the next is due later
            try:
                self._pending[key] = self._executor.submit(self._compare, key, window)
            except RuntimeError:  # shut down: the app is closing
                return

    def _compare(self, key: tuple[str, str], window: DriftWindow) -> None:
        try:
            drifted = window.evaluate().drift
        except (InsightRayError, ValueError) as error:
            _log.warning("drift comparison of %s %s failed: %s", *key, error)
            return
        with self._lock:
            changed = self._verdicts.get(key, False) != drifted
            self._verdicts[key] = drifted
        if changed:
            _log.warning("drift window of %s %s: %s", *key, "drift" if drifted else "no drift")
            if self.on_change is not None:
                try:
                    self.on_change(*key, drifted)
                except Exception:  # the trigger must not stop the monitor
                    _log.exception("retraining trigger on drift of %s %s failed", *key)

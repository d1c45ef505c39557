"""Serving models: loading, batching, caching, version routing and analysis.

- :mod:`~insightray.serving.hosting.inference`: the model host and its runners.
- :mod:`~insightray.serving.hosting.batching`: dynamic batching per model version.
- :mod:`~insightray.serving.hosting.cache`: the result cache.
- :mod:`~insightray.serving.hosting.metrics`: the service's Prometheus metrics.
- :mod:`~insightray.serving.hosting.rollout`: the rollout registry (versions, stages,
  traffic shares, shadows); not to be confused with :mod:`insightray.models.registry`.
- :mod:`~insightray.serving.hosting.analysis`: analysing a study and storing its result.
"""

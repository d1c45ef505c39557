"""Monitoring: what a model saw in training, and whether what it sees now is like it.

- :mod:`~insightray.monitoring.features`: per-image intensity statistics, geometry and DICOM
  metadata (no patient data).
- :mod:`~insightray.monitoring.embedding`: the model's pooled backbone features.
- :mod:`~insightray.monitoring.scoring`: probabilistic-PCA distance models with thresholds set
  on held-out training images for a stated false-alarm rate.
- :mod:`~insightray.monitoring.profile`: reference profiles stored in the model folder
  (``profile.json`` + ``profile.npz``), built by ``insightray monitor profile``.
- :mod:`~insightray.monitoring.guard`: the per-request out-of-distribution guard
  (``warnings`` and ``ood_score`` on every image result).
- :mod:`~insightray.monitoring.drift`: two-sample drift tests (``insightray monitor drift``).
- :mod:`~insightray.monitoring.window`: a rolling window of recent images' features compared
  with the profile (the service's drift gauges).

Submodules are imported where used: the guard needs numpy and torch only; fitting a profile
needs scikit-learn and the drift tests scipy.

Example:
    >>> from insightray.monitoring.profile import load_profile  # doctest: +SKIP
"""

"""What the service does with an image the out-of-distribution guard warns about.

Every guarded result is counted (``insightray_ood_images_total``, ``insightray_ood_score``);
with ``ood_action = refuse`` a flagged image is answered 422 ``OutOfDistributionError`` and
its result is not returned (the service stays up and the audit log records the refusal).

Example:
    >>> screen(services, entry, output)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from insightray.errors import OutOfDistributionError
from insightray.serving.deps import Services
from insightray.serving.hosting.rollout import ModelEntry

__all__ = ["screen"]


def screen(services: Services, entry: ModelEntry, output: Any) -> None:
    """Count a result's guard outcome; refuse it when the settings say so.

    Raises:
        OutOfDistributionError: The image was flagged and ``ood_action`` is ``refuse`` (422).
    """
    warnings = tuple(getattr(output, "warnings", ()))
    score = getattr(output, "ood_score", None)
    if score is None and not warnings:
        return  # no reference profile: nothing was checked
    services.metrics.observe_ood(entry.name, entry.version, score, bool(warnings))
    if warnings and services.settings.ood_action == "refuse":
        raise OutOfDistributionError(
            f"model {entry.name}",
            "the image is unlike its training images (" + "; ".join(warnings) + ")",
            "send an image of the kind the model card describes",
        )

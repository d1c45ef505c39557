"""The privacy budget spent by central DP with client-side clipping, per round.

Each aggregated round is one release of the subsampled Gaussian mechanism at the site level
(one "record" is one site's whole update, clipped to ``dp_clip``): sampling rate ``q`` =
sampled sites / sites, noise multiplier ``z_eff = dp_noise * replies / sampled`` (Flower
calibrates the noise to the sites it sampled; fewer replies mean less noise per update).
Opacus's Renyi-DP accountant (Mironov 2017, Mironov et al. 2019) composes the rounds and
converts to ``(epsilon, delta)``. Skipped rounds release nothing and are not counted.

Example:
    >>> budget = PrivacyBudget(delta=1e-3)
    >>> budget.add_round(noise=1.0, sampled=3, sites=3, replies=3) > 0
    True
"""

from __future__ import annotations

import math

__all__ = ["PrivacyBudget"]


class PrivacyBudget:
    """Accumulates rounds and reports epsilon at ``delta``."""

    def __init__(self, delta: float) -> None:
        from opacus.accountants import RDPAccountant

        self.delta = delta
        self._accountant = RDPAccountant()
        self._unbounded = False

    def add_round(self, *, noise: float, sampled: int, sites: int, replies: int) -> float:
        """Account one aggregated round; return epsilon spent so far (``inf`` without noise)."""
        effective = noise * replies / max(sampled, 1)
        if effective <= 0:
            self._unbounded = True
        else:
            self._accountant.step(noise_multiplier=effective, sample_rate=min(sampled / sites, 1))
        return self.epsilon

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far at :attr:`delta` (``inf`` if any round had no noise)."""
        if self._unbounded:
            return math.inf
        if not self._accountant.history:
            return 0.0
        return float(self._accountant.get_epsilon(delta=self.delta))

"""The server's strategy: Flower's FedAvg or FedProx, guarded, optionally with central DP noise.

:func:`build_strategy` returns Flower's own strategies (``flwr.server.strategy``, the API its
SecAgg+ workflow drives), never a home-made aggregation:

- :class:`GuardedFedAvg` / :class:`GuardedFedProx` add two checks in front of Flower's
  sample-weighted mean: a reply whose arrays have the wrong count or shape, are not floating
  point, or hold a NaN or infinity, is dropped (logged without any site data); a round with
  fewer valid replies than ``min_sites`` is skipped (the global model stays as it was) and
  logged. Each round's outcome is kept in :attr:`GuardedFedAvg.rounds`.
- With ``dp_clip > 0`` the strategy is wrapped in Flower's
  ``DifferentialPrivacyClientSideFixedClipping``: the sites clip their update to ``dp_clip``
  (Flower's ``fixedclipping_mod``) and the server adds Gaussian noise of standard deviation
  ``dp_noise * dp_clip / sampled_sites`` to the aggregate. Sites then report a weight of 1
  (an unweighted mean), which is what that noise calibration assumes. The budget is accounted
  in :mod:`insightray.federated.privacy`.

Example:
    >>> from insightray.federated.settings import FederatedSettings
    >>> strategy = build_strategy(FederatedSettings(strategy="fedprox"), [], sites=3)
    >>> type(strategy).__name__, strategy.proximal_mu
    ('GuardedFedProx', 0.01)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.common import (
    FitIns,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAvg,
    FedProx,
    Strategy,
)

from insightray.federated.settings import FederatedSettings

__all__ = ["GuardedFedAvg", "GuardedFedProx", "build_strategy", "valid_update"]

logger = logging.getLogger("insightray.federated")

EvaluateFn = Callable[[int, NDArrays, dict[str, Scalar]], tuple[float, dict[str, Scalar]] | None]


def valid_update(arrays: NDArrays, reference: NDArrays) -> str:
    """Why ``arrays`` cannot be aggregated with ``reference``'s layout ("" when it can)."""
    if len(arrays) != len(reference):
        return f"{len(arrays)} arrays instead of {len(reference)}"
    for index, (array, expected) in enumerate(zip(arrays, reference, strict=True)):
        if array.shape != expected.shape:
            return f"array {index} has shape {array.shape}, expected {expected.shape}"
        if array.dtype.kind != "f":
            return f"array {index} has dtype {array.dtype}, expected floating point"
        if not np.all(np.isfinite(array)):
            return f"array {index} holds NaN or infinite values"
    return ""


class _Guard:
    """The checks of the module docstring, mixed in front of a Flower strategy."""

    min_sites: int
    rounds: list[dict[str, Any]]
    _reference: NDArrays

    def _remember(self, parameters: Parameters) -> None:
        self._reference = parameters_to_ndarrays(parameters)

    def _guard(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: int
    ) -> list[tuple[ClientProxy, FitRes]]:
        kept = []
        for proxy, fit in results:
            reason = valid_update(parameters_to_ndarrays(fit.parameters), self._reference)
            if reason:
                logger.warning("round %d: update rejected: %s", server_round, reason)
                continue
            kept.append((proxy, fit))
        record: dict[str, Any] = {
            "round": server_round,
            "replies": len(results),
            "rejected": len(results) - len(kept),
            "failures": failures,
            "weight": sum(fit.num_examples for _, fit in kept),
            "skipped": False,
        }
        losses = [(fit.num_examples, fit.metrics.get("loss")) for _, fit in kept]
        if losses and all(isinstance(loss, float) for _, loss in losses):
            record["train_loss"] = sum(n * float(loss or 0) for n, loss in losses) / max(
                sum(n for n, _ in losses), 1
            )
        self.rounds.append(record)
        # Under SecAgg+ every surviving site's reply carries the same unmasked weighted mean
        # (Flower's workflow), so the count of replies is the count of sites either way.
        if len(kept) < self.min_sites:
            record["skipped"] = True
            logger.warning(
                "round %d skipped: %d valid update(s), at least %d needed",
                server_round,
                len(kept),
                self.min_sites,
            )
            return []
        return kept


class GuardedFedAvg(_Guard, FedAvg):
    """Flower's FedAvg behind the checks of the module docstring."""

    def __init__(self, *, min_sites: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_sites = min_sites
        self.rounds = []
        self._reference = []

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        self._remember(parameters)
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        kept = self._guard(server_round, results, len(failures))
        if not kept:
            return None, {}
        return super().aggregate_fit(server_round, kept, failures)


class GuardedFedProx(GuardedFedAvg, FedProx):
    """Flower's FedProx (it sends ``proximal_mu`` to the sites) behind the same checks."""


def build_strategy(
    settings: FederatedSettings,
    initial: NDArrays,
    *,
    sites: int,
    evaluate_fn: EvaluateFn | None = None,
    fit_config: dict[str, Scalar] | None = None,
) -> Strategy:
    """Flower's strategy for ``settings`` (see the module docstring).

    Args:
        settings: The run's settings.
        initial: The initial global arrays.
        sites: Sites expected to connect (for client sampling and DP noise calibration).
        evaluate_fn: Server-side evaluation of each round's model (optional).
        fit_config: Sent to the sites with every round's instructions (the task's spec).
    """
    extra = dict(fit_config or {})
    sampled = max(settings.min_sites, round(settings.fraction * sites))
    common: dict[str, Any] = {
        "fraction_fit": settings.fraction,
        "fraction_evaluate": 0.0,
        "min_fit_clients": settings.min_sites,
        "min_evaluate_clients": 0,
        "min_available_clients": settings.min_sites,
        "accept_failures": True,
        "evaluate_fn": evaluate_fn,
        "on_fit_config_fn": lambda server_round: {"server_round": server_round, **extra},
        "initial_parameters": ndarrays_to_parameters(initial) if initial else None,
        "min_sites": settings.min_sites,
    }
    strategy: Strategy
    if settings.strategy == "fedprox":
        strategy = GuardedFedProx(proximal_mu=settings.mu, **common)
    else:
        strategy = GuardedFedAvg(**common)
    if settings.private:
        strategy = DifferentialPrivacyClientSideFixedClipping(
            strategy,
            noise_multiplier=settings.dp_noise,
            clipping_norm=settings.dp_clip,
            num_sampled_clients=sampled,
        )
    return strategy


def guarded(strategy: Strategy) -> GuardedFedAvg:
    """The guarded Flower strategy inside ``strategy`` (unwrapping the DP wrapper)."""
    inner = getattr(strategy, "strategy", strategy)
    assert isinstance(inner, GuardedFedAvg)
    return inner

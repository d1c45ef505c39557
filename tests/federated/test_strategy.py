"""The server's strategy: Flower's weighted mean, update checks, skipped rounds, DP accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping

from insightray.errors import ConfigError
from insightray.federated.privacy import PrivacyBudget
from insightray.federated.settings import FederatedSettings
from insightray.federated.strategy import build_strategy, guarded, valid_update

REFERENCE = [np.zeros((2, 3), dtype=np.float32), np.zeros(4, dtype=np.float32)]


def _reply(arrays: list[np.ndarray], weight: int) -> tuple[None, FitRes]:
    fit = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), weight, {"loss": 0.5})
    return None, fit  # the proxy is not used by aggregation


def _strategy(**values: object) -> object:
    strategy = build_strategy(FederatedSettings(**values), REFERENCE, sites=3)  # type: ignore[arg-type]
    guarded(strategy)._remember(ndarrays_to_parameters(REFERENCE))
    return strategy


def _arrays(value: float) -> list[np.ndarray]:
    return [np.full(a.shape, value, dtype=np.float32) for a in REFERENCE]


def test_aggregate_is_the_sample_weighted_mean() -> None:
    strategy = _strategy()
    replies = [_reply(_arrays(1.0), 10), _reply(_arrays(4.0), 30), _reply(_arrays(-2.0), 60)]
    parameters, _ = strategy.aggregate_fit(1, replies, [])  # type: ignore[attr-defined]
    expected = (1.0 * 10 + 4.0 * 30 - 2.0 * 60) / 100
    for array in parameters_to_ndarrays(parameters):
        np.testing.assert_allclose(array, expected, rtol=1e-6)


def test_bad_updates_are_rejected_and_a_thin_round_is_skipped() -> None:
    strategy = _strategy(min_sites=2)
    nan = _arrays(1.0)
    nan[1][2] = np.nan
    wrong_shape = [np.zeros((3, 2), dtype=np.float32), np.zeros(4, dtype=np.float32)]
    replies = [_reply(_arrays(1.0), 10), _reply(nan, 10), _reply(wrong_shape, 10)]
    parameters, _ = strategy.aggregate_fit(1, replies, [])  # type: ignore[attr-defined]
    assert parameters is None
    record = guarded(strategy).rounds[-1]  # type: ignore[arg-type]
    assert record["rejected"] == 2 and record["skipped"]
    replies.append(_reply(_arrays(3.0), 10))
    parameters, _ = strategy.aggregate_fit(2, replies, [])  # type: ignore[attr-defined]
    np.testing.assert_allclose(parameters_to_ndarrays(parameters)[0], 2.0)
    assert not guarded(strategy).rounds[-1]["skipped"]  # type: ignore[arg-type]


def test_valid_update_reasons() -> None:
    assert valid_update(_arrays(0.0), REFERENCE) == ""
    assert "arrays" in valid_update(REFERENCE[:1], REFERENCE)
    assert "dtype" in valid_update([a.astype(np.int32) for a in REFERENCE], REFERENCE)
    assert "infinite" in valid_update([np.full((2, 3), np.inf), REFERENCE[1]], REFERENCE)


def test_dp_wraps_flowers_strategy_and_fedprox_sends_mu() -> None:
    strategy = _strategy(dp_clip=1.0, dp_noise=0.5, strategy="fedprox", mu=0.1)
    assert isinstance(strategy, DifferentialPrivacyClientSideFixedClipping)
    assert guarded(strategy).proximal_mu == 0.1  # type: ignore[attr-defined]


def test_epsilon_grows_with_rounds_and_falls_with_noise() -> None:
    low, high = PrivacyBudget(1e-3), PrivacyBudget(1e-3)
    eps_low = [low.add_round(noise=0.5, sampled=3, sites=3, replies=3) for _ in range(3)]
    eps_high = [high.add_round(noise=2.0, sampled=3, sites=3, replies=3) for _ in range(3)]
    assert eps_low[0] < eps_low[1] < eps_low[2]
    assert eps_high[-1] < eps_low[-1]
    assert math.isinf(PrivacyBudget(1e-3).add_round(noise=0.0, sampled=3, sites=3, replies=3))


def test_settings_round_trip_and_checks() -> None:
    settings = FederatedSettings(strategy="fedprox", dp_clip=1.0, dp_noise=0.3, secagg=True)
    assert FederatedSettings.from_run_config(settings.to_run_config()) == settings
    with pytest.raises(ConfigError):
        FederatedSettings(strategy="scaffold")
    with pytest.raises(ConfigError):
        FederatedSettings(dp_noise=1.0)


def test_client_sampling_takes_a_fraction_but_never_fewer_than_min_sites() -> None:
    sampled = guarded(_strategy(fraction=0.5, min_sites=2))  # type: ignore[arg-type]
    assert sampled.num_fit_clients(10)[0] == 5
    assert sampled.num_fit_clients(3)[0] == 2


def test_noised_batch_norm_variances_load_without_nan() -> None:
    import torch
    from torch import nn

    from insightray.federated.site import get_arrays, set_arrays, shared_keys

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    keys = shared_keys(model)
    arrays = get_arrays(model, keys)
    variance = keys.index("1.running_var")
    arrays[variance] = np.array([-0.05, 0.02, -1e-6, 1.0], dtype=np.float32)  # DP noise did this
    set_arrays(model, keys, arrays)
    assert torch.isfinite(model(torch.rand(2, 1, 8, 8))).all()
    assert model[1].running_var.min().item() == pytest.approx(model[1].eps)
    assert model[1].running_var[3].item() == 1.0

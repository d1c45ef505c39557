"""FedProx's proximal term and the fracture trainer's local round that uses it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from insightray.training.fracture import FractureTrainConfig, build_classifier
from insightray.training.fracture.steps import train_local_epochs
from insightray.training.proximal import anchor_of, proximal_term


def test_proximal_term_is_half_mu_times_the_squared_distance() -> None:
    model = torch.nn.Linear(3, 2)
    anchor = anchor_of(model)
    with torch.no_grad():
        model.weight += 1.0  # 6 entries moved by 1
    assert float(proximal_term(model, anchor, 0.5)) == 0.5 / 2 * 6


@pytest.mark.slow
def test_fracture_local_round_with_fedprox_stays_closer_to_its_start() -> None:
    config = FractureTrainConfig(
        model="efficientnet_lite0", image_size=32, batch_size=4, pretrained=False, lr=1e-2
    )
    images = np.random.default_rng(0).random((8, 32, 32)).astype(np.float16)
    labels = np.array([0, 1] * 4)
    initial = build_classifier(config)
    drift = {}
    for mu in (0.0, 100.0):
        model = copy.deepcopy(initial)
        start = anchor_of(model)
        fit = train_local_epochs(
            model, config, images, labels, torch.device("cpu"), epochs=1, proximal_mu=mu
        )
        assert (fit.steps, fit.images) == (2, 8)
        with torch.no_grad():
            drift[mu] = float(proximal_term(model, start, 2.0))
    assert 0 < drift[100.0] < drift[0.0]

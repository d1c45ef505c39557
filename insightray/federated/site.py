"""A site's side of a round: its own data, the global weights in, a local update out.

:class:`Site` is a Flower ``NumPyClient``, the same for every task: the run's settings name
the task (:func:`~insightray.federated.tasks.get_task`). Each round it reads the site's data
(the folder named by the SuperNode's ``--node-config data=...``; the path never leaves the
site), builds the task's network (from the server's spec in the round's instructions), loads
the global arrays, trains ``local_epochs`` with the task's own trainer (the fracture, NER or
detector trainer's ``train_local_epochs``; FedProx adds its proximal term) and
returns the new arrays, the site's example count as its weight (1 under DP) and its mean
loss. Nothing else is sent.

Batch norm is averaged like every other weight by default. FedBN (Li et al. 2021; ``--fedbn``;
models without batch norm, like the NER tagger, are not affected) is the option for sites
whose scanners differ: with ``local_bn`` the batch-norm layers' weights and
running statistics stay at the site between rounds (kept in Flower's per-node context state):
the global values are loaded only in the first round. The site still sends its BN values, so
the global model, which must serve hospitals that never trained it, carries their
sample-weighted mean, whose statistics no site trained with: on the benchmark's own
validation groups it scored below averaged batch norm (BENCHMARKS.md), hence the default.
Why not GroupNorm: EfficientNet-Lite0 is the only classifier here with packaged ImageNet
weights, which matter most at a small federated budget, and swapping its BN for GroupNorm
would throw those weights away.

With ``--node-config audit=DIR`` the site also keeps its own copy of every update it sent
(``round_N.npz`` and a line in ``sent.jsonl``): hospitals can audit what left them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar
from torch import nn

from insightray.errors import InputError
from insightray.federated.settings import FederatedSettings
from insightray.federated.strategy import valid_update
from insightray.federated.tasks import get_task
from insightray.training.runtime import seed_everything, set_threads

__all__ = [
    "Site",
    "batch_norm_mode",
    "batchnorm_keys",
    "get_arrays",
    "set_arrays",
    "shared_keys",
]

LOCAL_BN_RECORD = "local_bn"


def shared_keys(model: nn.Module) -> list[str]:
    """The state entries a round exchanges: every floating-point tensor, in state order."""
    return [key for key, value in model.state_dict().items() if value.is_floating_point()]


def batchnorm_keys(model: nn.Module) -> list[str]:
    """State entries that belong to batch-norm layers (FedBN keeps them local)."""
    keys = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            keys += [f"{name}.{key}" for key in module.state_dict()]
    return keys


def batch_norm_mode(settings: FederatedSettings) -> str:
    """How a run treated batch norm, for the card's lineage."""
    return "FedBN (local BN between rounds)" if settings.local_bn else "averaged"


def get_arrays(model: nn.Module, keys: list[str]) -> NDArrays:
    """``keys``' tensors as float32 NumPy arrays."""
    state = model.state_dict()
    return [state[key].detach().cpu().float().numpy().copy() for key in keys]


def set_arrays(model: nn.Module, keys: list[str], arrays: NDArrays) -> None:
    """Load ``arrays`` into ``keys`` (shapes are checked by ``load_state_dict``).

    Batch-norm running variances are floored at the layer's ``eps``: under differential
    privacy the server's Gaussian noise lands on them too and can make them negative, which
    would turn every output into NaN (a floor is post-processing, so the privacy guarantee
    is unchanged).
    """
    state = model.state_dict()
    for key, array in zip(keys, arrays, strict=True):
        state[key] = torch.from_numpy(np.asarray(array)).to(state[key].dtype)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            key = f"{name}.running_var"
            state[key] = state[key].clamp(min=module.eps)
    model.load_state_dict(state)


class Site(NumPyClient):
    """One hospital's client for any task (see the module docstring)."""

    def __init__(self, context: Context) -> None:
        self.site_context = context

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        return []

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        context = self.site_context
        settings = FederatedSettings.from_run_config(context.run_config)
        task = get_task(settings.task)
        node = context.node_config
        server_round = int(config.get("server_round", 0))
        set_threads(int(node.get("threads", 1)))
        seed = settings.seed * 1000 + server_round * 17 + int(node.get("seed", 0))
        seed_everything(seed)
        data = task.load_site(str(node["data"]), settings, str(node.get("cache", "")))
        model = task.build_model(settings, config)
        keys = shared_keys(model)
        reason = valid_update(parameters, get_arrays(model, keys))
        if reason:
            raise InputError("global model", reason, "the server and site run different models")
        set_arrays(model, keys, parameters)
        bn_keys = batchnorm_keys(model) if settings.local_bn else []
        if bn_keys and LOCAL_BN_RECORD in context.state:
            local = context.state[LOCAL_BN_RECORD]
            assert isinstance(local, ArrayRecord)
            state = model.state_dict()
            state.update(local.to_torch_state_dict())
            model.load_state_dict(state)
        proximal_mu = float(config.get("proximal_mu", 0.0))
        fit = task.train_local(model, data, settings, config, seed=seed, proximal_mu=proximal_mu)
        if bn_keys:
            state = model.state_dict()
            context.state[LOCAL_BN_RECORD] = ArrayRecord(
                torch_state_dict={key: state[key].detach().clone() for key in bn_keys}
            )
        update = get_arrays(model, keys)
        weight = 1 if settings.private else fit.examples
        if node.get("audit"):
            _audit(Path(str(node["audit"])), server_round, update, weight)
        return update, weight, {"loss": fit.loss, "steps": fit.steps}


def _audit(folder: Path, server_round: int, arrays: NDArrays, weight: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"round_{server_round}.npz"
    np.savez(path, *arrays)
    record: dict[str, Any] = {
        "round": server_round,
        "weight": weight,
        "arrays": len(arrays),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with (folder / "sent.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")

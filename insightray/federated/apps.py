"""The Flower app: the ServerApp the coordinator runs and the ClientApp every site runs.

Flower's deployment engine loads these two objects (``insightray.federated.apps:server_app``
and ``:client_app``) in its own processes: ``flwr-serverapp`` beside the SuperLink and
``flwr-clientapp`` beside each SuperNode. The server drives Flower's ``DefaultWorkflow``
with the strategy of :func:`~insightray.federated.strategy.build_strategy`; with ``secagg``
its fit step is Flower's ``SecAggPlusWorkflow`` (each pair of sites masks its updates, the
server can only unmask the sum). The run's ``task`` setting picks the
:class:`~insightray.federated.tasks.FederatedTask` (model, server-side score, the spec sent to
the sites). The client runs :class:`~insightray.federated.site.Site` behind Flower's
``secaggplus_mod`` and, when the server asks for clipping, ``fixedclipping_mod``.

At the end the server writes ``global.npz`` (the final arrays, in
:func:`~insightray.federated.site.shared_keys` order), ``spec.json`` (the task's spec) and
``rounds.json`` (one record per round: replies, rejections, failures, skipped, loss, the
task's server-side score ``eval_auc`` / ``eval_f1`` when ``eval_data`` is set, and epsilon)
into the run's ``out`` folder.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import Client
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import NDArrays, Scalar
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

from insightray.federated.privacy import PrivacyBudget
from insightray.federated.settings import FederatedSettings
from insightray.federated.site import Site, get_arrays, set_arrays, shared_keys
from insightray.federated.strategy import build_strategy, guarded
from insightray.federated.tasks import get_task

__all__ = ["client_app", "server_app"]

logger = logging.getLogger("insightray.federated")

GLOBAL_FILE = "global.npz"
ROUNDS_FILE = "rounds.json"
SPEC_FILE = "spec.json"
CLIPPING_KEY = "clipping_norm"


def _client_fn(context: Context) -> Client:
    return Site(context).to_client()


def _secagg_when_asked(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``secaggplus_mod`` on SecAgg+ rounds; plain rounds pass straight through."""
    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def _clip_when_asked(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``fixedclipping_mod`` on rounds whose config asks for clipping (DP runs)."""
    if msg.metadata.message_type == MessageType.TRAIN:
        config = recorddict_compat.recorddict_to_fitins(msg.content, keep_input=True).config
        if CLIPPING_KEY in config:
            return fixedclipping_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


client_app = ClientApp(client_fn=_client_fn, mods=[_secagg_when_asked, _clip_when_asked])
server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    from insightray.training.runtime import seed_everything

    settings = FederatedSettings.from_run_config(context.run_config)
    task = get_task(settings.task)
    seed_everything(settings.seed)
    sites = int(context.run_config.get("sites", settings.min_sites))
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = task.model_spec(settings)
    (out / SPEC_FILE).write_text(json.dumps(spec) + "\n", encoding="utf-8")
    model = task.build_model(settings, spec, initial=True)
    keys = shared_keys(model)
    initial = get_arrays(model, keys)
    evaluate_fn = _evaluator(settings, spec, model, keys) if settings.eval_data else None
    strategy = build_strategy(
        settings, initial, sites=sites, evaluate_fn=evaluate_fn, fit_config=dict(spec)
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=settings.rounds, round_timeout=settings.round_timeout),
        strategy=strategy,
    )
    fit_workflow = None
    if settings.secagg:
        fit_workflow = SecAggPlusWorkflow(
            num_shares=max(3, sites),
            reconstruction_threshold=settings.min_sites,
            max_weight=float(settings.max_site_images),
            clipping_range=_clipping_range(initial, settings),
            quantization_range=2**24,
            timeout=settings.round_timeout,
        )
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
    final = legacy.state.array_records["parameters"].to_numpy_ndarrays()
    np.savez(out / GLOBAL_FILE, *final)
    records = _round_records(settings, task.metric, strategy, legacy, sites)
    (out / ROUNDS_FILE).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


def _clipping_range(initial: NDArrays, settings: FederatedSettings) -> float:
    """SecAgg+ clips every value to +-range before quantising: leave room above the weights."""
    largest = max(float(np.abs(array).max()) for array in initial if array.size)
    headroom = 4.0 * largest if not settings.private else 4.0 * largest + settings.dp_clip
    return float(2 ** math.ceil(math.log2(max(headroom, 1.0))))


def _evaluator(
    settings: FederatedSettings, spec: dict[str, Any], model: Any, keys: list[str]
) -> Any:
    """Server-side score of each round's global model on the coordinator's ``eval_data``."""
    task = get_task(settings.task)
    score = task.scorer(settings, spec, settings.eval_data, Path(settings.out) / "cache")

    def evaluate(
        server_round: int, arrays: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        set_arrays(model, keys, arrays)
        metrics = score(model)
        logger.info("round %d: eval %s %.4f", server_round, task.metric, metrics[task.metric])
        return 0.0, {task.metric: float(metrics[task.metric])}

    return evaluate


def _round_records(
    settings: FederatedSettings, metric: str, strategy: Any, legacy: LegacyContext, sites: int
) -> dict[str, Any]:
    rounds = guarded(strategy).rounds
    budget = PrivacyBudget(settings.dp_delta) if settings.private else None
    sampled = max(settings.min_sites, round(settings.fraction * sites))
    scores = dict(legacy.history.metrics_centralized.get(metric, []))
    for record in rounds:
        if budget is not None and not record["skipped"]:
            # Under DP every site reports weight 1: the round's weight is its reply count.
            epsilon = budget.add_round(
                noise=settings.dp_noise, sampled=sampled, sites=sites, replies=record["weight"]
            )
            record["epsilon"] = None if math.isinf(epsilon) else epsilon
        if record["round"] in scores:
            record[f"eval_{metric}"] = float(scores[record["round"]])
    return {
        "settings": settings.to_run_config(),
        "sites": sites,
        "metric": metric,
        f"initial_eval_{metric}": float(scores[0]) if 0 in scores else None,
        "epsilon": None if budget is None or math.isinf(budget.epsilon) else budget.epsilon,
        "delta": settings.dp_delta if budget is not None else None,
        "rounds": rounds,
    }

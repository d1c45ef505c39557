"""``insightray train fracture-ensemble``: combine cross-validated fracture classifiers.

Weighted averaging or a stacking meta-learner (logistic regression) fitted on the out-of-fold
logits of ``train fracture --folds K`` runs; the ensemble is a model folder that ``--model``
accepts wherever a fracture classifier goes (``classify``, ``evaluate``, ``serve``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import out, train_app


@train_app.command("fracture-ensemble")
def train_fracture_ensemble(
    runs: Annotated[
        list[Path], typer.Option("--run", help="A `train fracture --folds K` run folder (repeat).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the ensemble model.")],
    method: Annotated[
        str, typer.Option("--method", help="mean (weighted average) or stacking.")
    ] = "mean",
    weights: Annotated[
        list[float] | None,
        typer.Option("--weight", help="Weight per --run for mean (default equal; repeat)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit an ensemble on the runs' out-of-fold predictions; report its cross-fitted AUC/ECE."""
    from insightray.training.fracture.ensemble import build_fracture_ensemble

    result = build_fracture_ensemble(runs, out_dir, method=method, weights=weights or None)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    oof = result.oof
    members = ", ".join(f"{name} {auc:.4f}" for name, auc in result.members_auc.items())
    out.print(
        f"{method} ensemble: out-of-fold AUC {oof.auc:.4f} [{oof.auc_ci[0]:.4f}, "
        f"{oof.auc_ci[1]:.4f}], ECE {oof.ece:.4f} (members: {members}); weights "
        f"{[round(w, 4) for w in result.weights]}, intercept {result.intercept:.4f}, "
        f"temperature {result.temperature:.4f} -> {result.card_path}",
        highlight=False,
        soft_wrap=True,
    )

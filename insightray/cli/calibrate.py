"""``insightray calibrate fracture``: temperature-scale an existing fracture classifier.

Fits one temperature on a labelled set that was never used as a test set (the model's
validation split, or out-of-fold images) and writes a calibrated copy of the model: the same
weights, a card with ``calibration.temperature`` and its operating points moved onto the
calibrated scale. ``evaluate fracture`` then reports ECE and NLL before and after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import app, out

calibrate_app = typer.Typer(help="Calibrate a model's scores.", no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")


@calibrate_app.command("fracture")
def calibrate_fracture(
    data: Annotated[
        Path,
        typer.Option("--data", help="Labelled images never used as a test set (folder or CSV)."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the calibrated model.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model card .json, folder with card.json, or bundled name."),
    ] = None,
    fitted_on: Annotated[
        str, typer.Option("--fitted-on", help="Describe the data for the card.")
    ] = "",
    version: Annotated[
        str | None, typer.Option("--version", help="Card version (default: VERSION+calibrated).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit a temperature on --data and write the temperature-scaled model to --out."""
    from insightray.training.fracture.calibrate import calibrate_fracture_model

    result = calibrate_fracture_model(model, data, out_dir, fitted_on=fitted_on, version=version)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    report = result.report
    out.print(
        f"temperature {result.temperature:.4f} on {result.images} images: ECE "
        f"{report.ece_before:.4f} -> {report.ece_after:.4f}, NLL {report.nll_before:.4f} -> "
        f"{report.nll_after:.4f}; model card: {result.card_path}",
        highlight=False,
        soft_wrap=True,
    )

"""``optimize fracture`` and ``optimize ner``: INT8 copies of the other models, as new folders.

Example:
    insightray optimize fracture --int8 --calibration train_images/ --out runs/fracture-int8
    insightray evaluate fracture --model runs/fracture-int8 --data val_images/ --json
    insightray optimize ner --int8 --out runs/ner-int8
    insightray nlp analyze "Type 2 diabetes." --ner-model runs/ner-int8
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import optimize_app, out
from insightray.errors import ConfigError
from insightray.models import ModelCard

ParentOption = Annotated[
    str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
]
OutOption = Annotated[Path, typer.Option("--out", help="The new model folder.")]


@optimize_app.command("fracture")
def optimize_fracture(
    out_dir: OutOption,
    calibration: Annotated[
        Path,
        typer.Option(
            "--calibration",
            help="Training images to calibrate on: a folder, or a list file of image paths. "
            "Never the images you evaluate on.",
        ),
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Static INT8 quantisation (ONNX Runtime, QDQ).")
    ] = False,
    model: ParentOption = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Calibration images used.")] = 64,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: percentile, minmax or entropy.")
    ] = "percentile",
) -> None:
    """Quantise a fracture classifier to INT8; the new folder runs with `classify fracture
    --model OUT` and `evaluate fracture --model OUT` (no Grad-CAM: explain the parent)."""
    from insightray.engine.quantize import calibration_images, quantize_classifier

    if not int8:
        raise ConfigError("optimize fracture", "no method chosen", "pass --int8")
    chosen = calibration_images(calibration, images)
    card = quantize_classifier(
        model, chosen, out_dir, method, description=f"{len(chosen)} images from {calibration}"
    )
    _report(out_dir, card)


@optimize_app.command("ner")
def optimize_ner(
    out_dir: OutOption,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Dynamic INT8 of the LSTM and linear layers (PyTorch)."),
    ] = False,
    model: ParentOption = None,
) -> None:
    """Quantise a BiLSTM-CRF tagger to INT8; the new folder runs with `evaluate ner --model
    OUT`, `nlp analyze --ner-model OUT` and in the service's text pipeline."""
    from insightray.engine.ner_int8 import quantize_ner

    if not int8:
        raise ConfigError("optimize ner", "no method chosen", "pass --int8")
    _report(out_dir, quantize_ner(model, out_dir))


def _report(out_dir: Path, card: ModelCard) -> None:
    out.print(
        f"{out_dir} ({card.weights_file}, {card.version}); parent {card.lineage.parent}",
        highlight=False,
        soft_wrap=True,
    )

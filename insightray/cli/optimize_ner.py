"""``optimize ner``: an INT8 copy of a BiLSTM-CRF tagger, as a new model folder.

Example:
    insightray optimize ner --int8 --out runs/ner-int8
    insightray nlp analyze "Type 2 diabetes." --ner-model runs/ner-int8
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import optimize_app
from insightray.cli.optimize import report_copy
from insightray.errors import ConfigError


@optimize_app.command("ner")
def optimize_ner(
    out_dir: Annotated[Path, typer.Option("--out", help="The new model folder.")],
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Dynamic INT8 of the LSTM and linear layers (PyTorch)."),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
    ] = None,
) -> None:
    """Quantise a BiLSTM-CRF tagger to INT8; the new folder runs with `evaluate ner --model
    OUT`, `nlp analyze --ner-model OUT` and in the service's text pipeline."""
    from insightray.engine.ner_int8 import quantize_ner

    if not int8:
        raise ConfigError("optimize ner", "no method chosen", "pass --int8")
    report_copy(out_dir, quantize_ner(model, out_dir))

"""``optimize ner`` and ``optimize textcls``: INT8 copies of the text models, as new folders.

Example:
    insightray optimize ner --int8 --out runs/ner-int8
    insightray nlp analyze "Type 2 diabetes." --ner-model runs/ner-int8
    insightray optimize textcls --int8 --out runs/textcls-int8
    insightray nlp analyze "My skin is red and itchy." --model runs/textcls-int8
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import optimize_app
from insightray.cli.optimize import report_copy
from insightray.errors import ConfigError

Parent = Annotated[
    str | None, typer.Option("--model", help="Parent: card, model folder or bundled name.")
]
OutDir = Annotated[Path, typer.Option("--out", help="The new model folder.")]


@optimize_app.command("ner")
def optimize_ner(
    out_dir: OutDir,
    int8: Annotated[
        bool,
        typer.Option("--int8", help="Dynamic INT8 of the LSTM and linear layers (PyTorch)."),
    ] = False,
    model: Parent = None,
) -> None:
    """Quantise a BiLSTM-CRF tagger to INT8; the new folder runs with `evaluate ner --model
    OUT`, `nlp analyze --ner-model OUT` and in the service's text pipeline."""
    from insightray.engine.ner_int8 import quantize_ner

    if not int8:
        raise ConfigError("optimize ner", "no method chosen", "pass --int8")
    report_copy(out_dir, quantize_ner(model, out_dir))


@optimize_app.command("textcls")
def optimize_textcls(
    out_dir: OutDir,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8", help="Dynamic INT8 of every linear layer on ONNX Runtime (BERT fusions)."
        ),
    ] = False,
    model: Parent = None,
) -> None:
    """Quantise a BERT-family disease classifier to INT8; the new folder runs with `evaluate
    textcls --model OUT`, `nlp analyze --model OUT` and in the service's text pipeline (word
    explanations need the float parent)."""
    from insightray.engine.textcls_int8 import quantize_text_classifier

    if not int8:
        raise ConfigError("optimize textcls", "no method chosen", "pass --int8")
    report_copy(out_dir, quantize_text_classifier(model, out_dir))

"""Named-entity verbs: ``train ner`` and ``evaluate ner``.

Example:
    insightray train ner --train train.tsv --dev devel.tsv --out runs/ner --epochs 30
    insightray evaluate ner --data test.tsv --json
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from insightray.cli.common import err, evaluate_app, out, train_app

if TYPE_CHECKING:  # the verbs import torch and the models when they run, not at start-up
    from insightray.training.metrics.entities import EntityScores, TypeScores


class Architecture(str, Enum):
    """Which tagger ``train ner`` fits."""

    bilstm_crf = "bilstm-crf"
    bert = "bert"


DataFile = Annotated[Path, typer.Option(help="A word<TAB>tag file, blank line between sentences.")]


@train_app.command("ner")
def train_ner_command(
    train: DataFile,
    dev: Annotated[Path, typer.Option("--dev", help="Development file (model selection).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the trained model.")],
    epochs: Annotated[float, typer.Option(help="Most epochs (BERT: may be fractional).")] = 40,
    model: Annotated[Architecture, typer.Option(help="Tagger to train.")] = Architecture.bilstm_crf,
    threads: Annotated[int, typer.Option(help="CPU threads.", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop after this many minutes of training.")
    ] = None,
    data_name: Annotated[str, typer.Option(help="Training data, for the model card.")] = "",
    data_licence: Annotated[str, typer.Option(help="Its licence, for the model card.")] = "",
) -> None:
    """Train a named-entity tagger; pick the epoch with the best entity F1 on --dev."""
    from insightray.nlp.gazetteer import load_terms
    from insightray.training.ner.conll import read_conll
    from insightray.training.ner.token_classifier import BertNerConfig, train_token_classifier
    from insightray.training.ner.trainer import NerTrainConfig, train_ner

    command = "insightray " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    train_set, dev_set = read_conll(train), read_conll(dev)
    data = (data_name or f"{train.name} (development: {dev.name})", data_licence)
    err.print(f"{len(train_set)} training, {len(dev_set)} development sentences", highlight=False)
    if model is Architecture.bert:
        bert_config = BertNerConfig(
            epochs=epochs, seed=seed, threads=threads, max_minutes=max_minutes, command=command
        )
        _card, best = train_token_classifier(
            train_set, dev_set, out_dir, bert_config, describe_data=data, on_epoch=_report
        )
        out.print(f"dev F1 {best.f1:.4f} -> {out_dir / 'card.json'}", highlight=False)
        return
    config = NerTrainConfig(
        epochs=int(epochs), seed=seed, threads=threads, max_minutes=max_minutes, command=command
    )
    result = train_ner(
        train_set,
        dev_set,
        out_dir,
        config,
        terms=load_terms(),
        describe_data=data,
        on_epoch=_report,
    )
    out.print(
        f"dev F1 {result.dev.f1:.4f} (epoch {result.best_epoch} of {result.epochs_run}, "
        f"{result.seconds / 60:.1f} min) -> {result.card_path}",
        highlight=False,
    )


def _report(record: dict[str, float]) -> None:
    text = ", ".join(f"{key} {value:.4g}" for key, value in record.items())
    err.print(text, highlight=False)


@evaluate_app.command("ner")
def evaluate_ner_command(
    data: DataFile,
    model: Annotated[
        str | None,
        typer.Option(help="Bundled model name, model folder or card.json (default: bundled)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Entity-level exact-span precision, recall and F1 of a tagger on a labelled file."""
    from insightray.engine.ner import load_ner_model
    from insightray.models import load_card
    from insightray.models.catalog import default_model
    from insightray.models.text.token_classifier import (
        TOKEN_CLASSIFIER_NAME,
        load_token_classifier,
    )
    from insightray.nlp.ner import resolve_model
    from insightray.training.ner.conll import read_conll
    from insightray.training.ner.token_classifier import evaluate_token_classifier
    from insightray.training.ner.trainer import evaluate_ner

    model = model or default_model("ner")
    sentences = read_conll(data)
    card_path = resolve_model(model)
    started = time.perf_counter()
    if load_card(card_path).name == TOKEN_CLASSIFIER_NAME:
        scores = evaluate_token_classifier(load_token_classifier(card_path.parent), sentences)
    else:
        scores = evaluate_ner(load_ner_model(card_path), sentences)
    seconds = time.perf_counter() - started
    record: dict[str, Any] = {"model": str(model), "data": str(data), **scores.to_dict()}
    record["seconds"] = round(seconds, 3)
    if as_json:
        print(json.dumps(record))
    else:
        _print_scores(scores, f"{model} on {data}")


def _print_scores(scores: EntityScores, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("type", "precision", "recall", "F1", "gold", "predicted"):
        table.add_column(column)
    rows: list[tuple[str, TypeScores | EntityScores]] = [*scores.per_type.items()]
    rows.append(("all (micro)", scores))
    for name, row in rows:
        table.add_row(
            name,
            f"{row.precision:.4f}",
            f"{row.recall:.4f}",
            f"{row.f1:.4f}",
            str(row.gold),
            str(row.predicted),
        )
    out.print(table)
    out.print(f"sentences: {scores.sentences}", highlight=False)

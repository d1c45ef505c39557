"""Clinical text verbs: ``nlp analyze``, ``train textcls`` and ``evaluate textcls``.

Example:
    insightray nlp analyze "Denies chest pain. Cough for 3 days, possible pneumonia." --json
    insightray train textcls --data Symptom2Disease.csv --out runs/textcls
    insightray evaluate textcls --data Symptom2Disease.csv --split test --json
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from insightray.cli.common import app, err, evaluate_app, out, train_app
from insightray.errors import ConfigError, InputNotFoundError

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


class ExplainMethod(str, Enum):
    """``nlp analyze --explain-method``: :data:`insightray.nlp.attribution.METHODS`."""

    integrated_gradients = "integrated-gradients"
    attention_rollout = "attention-rollout"


nlp_app = typer.Typer(
    help="Clinical text: entities with context, time, disease ranking.", no_args_is_help=True
)
app.add_typer(nlp_app, name="nlp")


@nlp_app.command("analyze")
def analyze(
    text: Annotated[str | None, typer.Argument(help="The text (or use --file).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the text from a file.")] = None,
    as_json: Json = False,
    reference_date: Annotated[
        str | None, typer.Option("--date", help="The note's date (YYYY-MM-DD) for relative times.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Disease classifier.")] = None,
    ner_model: Annotated[
        str | None, typer.Option("--ner-model", help="NER tagger: bundled name or model folder.")
    ] = None,
    no_classify: Annotated[
        bool, typer.Option("--no-classify", help="Skip disease ranking.")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Diseases to show.")] = 5,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Show the words behind the best disease (integrated gradients)."
        ),
    ] = False,
    explain_method: Annotated[
        ExplainMethod | None,
        typer.Option(
            "--explain-method",
            help="How to weigh the words (implies --explain): integrated-gradients (signed, "
            "for the best disease) or attention-rollout (the encoder's self-attention).",
        ),
    ] = None,
) -> None:
    """Entities with negation, uncertainty, history, experiencer and time; ranked diseases.

    Text that reads as a radiology report also goes to the report structurer (as
    ``nlp report``): its CheXpert observations come under ``report``.
    """
    from insightray.nlp.pipeline import REPORT_THRESHOLD, ClinicalPipeline, PipelineConfig

    if (text is None) == (file is None):
        raise typer.BadParameter("give TEXT or --file FILE (one of them)")
    if file is not None:
        if not file.is_file():
            raise InputNotFoundError(str(file), "the file does not exist", "check the path")
        text = file.read_text(encoding="utf-8")
    config = PipelineConfig(classify=not no_classify, classifier=model, top_k=top_k)
    method = (explain_method or ExplainMethod.integrated_gradients).value
    extractor = None
    if ner_model is not None:
        from insightray.nlp.ner import NerTagger

        extractor = NerTagger.from_pretrained(ner_model)
    result = ClinicalPipeline(config=config, extractor=extractor).analyze(
        str(text), reference_date, explain=explain or explain_method is not None,
        explain_method=method,
    )  # fmt: skip
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    labels = None
    if result.report_score >= REPORT_THRESHOLD:  # routed to the report structurer
        from insightray.nlp.reports import ReportLabeller

        labels = ReportLabeller().label(str(text))
    if as_json:
        record = result.to_dict()
        record["report"] = None if labels is None else labels.to_dict()
        print(json.dumps(record, ensure_ascii=False))
        return
    table = Table(title=f"{len(result.entities)} entities in {len(result.sentences)} sentences")
    for column in ("type", "text", "span", "context", "time"):
        table.add_column(column)
    for entity in result.entities:
        flags = [
            name
            for name, on in (
                ("negated", entity.negated),
                ("uncertain", entity.uncertain),
                ("historical", entity.historical),
                ("hypothetical", entity.hypothetical),
            )
            if on
        ]
        if entity.experiencer != "patient":
            flags.append(f"experiencer: {entity.experiencer}")
        times = ", ".join(f"{t.text} ({t.value or '?'})" for t in entity.temporal)
        table.add_row(
            entity.type, entity.text, f"{entity.start}-{entity.end}", ", ".join(flags), times
        )
    out.print(table)
    if result.diseases:
        ranked = ", ".join(f"{d.label} {d.score:.2f}" for d in result.diseases)
        out.print(f"Diseases ({result.classifier}): {ranked}", highlight=False)
    if result.explanation is not None:
        words = ", ".join(f"{w.text} {w.weight:+.2f}" for w in result.explanation.top())
        how = result.explanation.method
        out.print(f"Words behind {result.explanation.label} ({how}): {words}", highlight=False)
    if result.abstained:
        out.print(f"Disease ranking abstained: {result.abstained}", highlight=False)
    if labels is not None:
        from insightray.cli.report import observations_table

        out.print(observations_table(labels))


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as error:
        raise typer.BadParameter("give three numbers, e.g. 0.8,0.1,0.1") from error
    if len(parts) != 3:
        raise typer.BadParameter("give three numbers, e.g. 0.8,0.1,0.1")
    return parts[0], parts[1], parts[2]


@train_app.command("textcls")
def train_textcls_command(
    data: Annotated[Path, typer.Option("--data", help="CSV: text + label column(s).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output model folder.")],
    encoder: Annotated[
        str, typer.Option("--encoder", help="all-minilm-l6-v2 or a local HF checkpoint folder.")
    ] = "all-minilm-l6-v2",
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str | None, typer.Option("--label-column")] = None,
    label_columns: Annotated[
        str | None, typer.Option("--label-columns", help="Comma-separated 0/1 columns.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train,val,test shares.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed")] = 13,
    max_length: Annotated[int, typer.Option("--max-length", min=8)] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    pooling: Annotated[str, typer.Option("--pooling", help="mean or cls.")] = "mean",
    head_epochs: Annotated[int, typer.Option("--head-epochs", min=0)] = 5,
    head_lr: Annotated[float, typer.Option("--head-lr")] = 2e-3,
    top_epochs: Annotated[int, typer.Option("--top-epochs", min=0)] = 3,
    top_layers: Annotated[int, typer.Option("--top-layers", min=1)] = 4,
    top_lr: Annotated[float, typer.Option("--top-lr")] = 3e-5,
    all_epochs: Annotated[int, typer.Option("--all-epochs", min=0)] = 4,
    all_lr: Annotated[float, typer.Option("--all-lr")] = 8e-5,
    layer_decay: Annotated[float, typer.Option("--layer-decay")] = 0.8,
    finetune_head_lr: Annotated[float, typer.Option("--finetune-head-lr")] = 5e-4,
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up share of steps.")] = 0.1,
    cycles: Annotated[int, typer.Option("--cycles", min=1, help="Cosine cycles.")] = 2,
    vocab_terms: Annotated[int, typer.Option("--vocab-terms", min=0)] = 0,
    mlm_corpus: Annotated[Path | None, typer.Option("--mlm-corpus")] = None,
    mlm_steps: Annotated[int, typer.Option("--mlm-steps", min=0)] = 0,
    storage: Annotated[str, typer.Option("--storage", help="delta or full.")] = "delta",
    threads: Annotated[int, typer.Option("--threads", min=1)] = 1,
    data_name: Annotated[str, typer.Option("--data-name", help="For the card.")] = "",
    data_licence: Annotated[str, typer.Option("--data-licence", help="For the card.")] = "",
    notes: Annotated[str, typer.Option("--notes", help="For the card.")] = "",
    as_json: Json = False,
) -> None:
    """Fine-tune a BERT-family classifier progressively and save it with its card."""
    from insightray.training.textcls.adapt import MlmConfig
    from insightray.training.textcls.trainer import Phase, TextClsConfig, train_textcls

    config = TextClsConfig(
        encoder=encoder,
        text_column=text_column,
        label_column=label_column,
        label_columns=tuple(label_columns.split(",")) if label_columns else None,
        fractions=_fractions(split),
        seed=seed,
        max_length=max_length,
        batch_size=batch_size,
        pooling=pooling,
        phases=(
            Phase("head", head_epochs, lr=0.0, head_lr=head_lr, unfreeze=0),
            Phase(f"top{top_layers}", top_epochs, top_lr, finetune_head_lr, top_layers),
            Phase("all", all_epochs, all_lr, finetune_head_lr, None, layer_decay),
        ),
        warmup_ratio=warmup,
        cosine_cycles=cycles,
        vocab_terms=vocab_terms,
        mlm=MlmConfig(steps=mlm_steps, max_length=max_length, seed=seed),
        mlm_corpus=str(mlm_corpus) if mlm_corpus else None,
        storage=storage,
        num_threads=threads,
        training_data=data_name,
        data_licence=data_licence,
        notes=notes,
    )
    result = train_textcls(data, out_dir, config, log=lambda line: err.print(line, highlight=False))
    summary = {"out": str(out_dir), **result.card.metrics, "added_terms": list(result.added_terms)}
    if as_json:
        print(json.dumps(summary))
    else:
        out.print(
            f"saved {out_dir}: test accuracy {result.test.accuracy:.4f}, "
            f"macro-F1 {result.test.macro_f1:.4f}",
            highlight=False,
        )


@evaluate_app.command("textcls")
def evaluate_textcls_command(
    data: Annotated[Path, typer.Option("--data", help="CSV: text + label column(s).")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Bundled model name, model folder or card.json (default: bundled)."
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="all, or train/val/test as the model was split.")
    ] = "all",
    as_json: Json = False,
) -> None:
    """Accuracy, macro-F1 and per-class scores of a text classifier on a CSV."""
    from insightray.models.catalog import default_model
    from insightray.models.text.bert_classifier import load_classifier
    from insightray.training.textcls.data import load_text_csv
    from insightray.training.textcls.evaluate import evaluate_textcls, split_for_card

    model = model or default_model("text-classification")
    loaded = load_classifier(model)
    recorded: dict[str, Any] = dict(loaded.card.preprocessing.extra.get("split") or {})
    columns = recorded.get("label_columns")
    dataset = load_text_csv(
        data,
        recorded.get("text_column") or "text",
        recorded.get("label_column"),
        tuple(columns) if columns else None,
    )
    if split != "all" and recorded.get("data_sha256"):
        from insightray.models.catalog import sha256_file

        if sha256_file(data) != recorded["data_sha256"]:
            raise ConfigError(str(data), "not the CSV the model was split on", "use --split all")
    report = evaluate_textcls(loaded, split_for_card(dataset, loaded.card, split))
    record = {"model": model, "data": str(data), "split": split, **report.to_dict()}
    if as_json:
        print(json.dumps(record))
        return
    out.print(
        f"{model} on {data} ({split}): {report.examples} examples, accuracy "
        f"{report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f}",
        highlight=False,
    )

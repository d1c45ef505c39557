"""Assistant verbs: ``ask``, ``chat``, ``index build``, ``train intent`` and ``train retriever``.

Example:
    insightray index build                     # MedQuAD from the shared data, once
    insightray ask "What causes gout?"
    insightray ask --file questions.txt --json # JSON Lines, one per input line
    insightray chat
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from insightray.cli.common import app, err, out
from insightray.errors import InputNotFoundError, InsightRayError


def _group(name: str, help_text: str) -> typer.Typer:
    """The shared ``name`` sub-command group, created on first use by any command module."""
    for info in app.registered_groups:
        if info.name == name and isinstance(info.typer_instance, typer.Typer):
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


index_app = _group("index", "Build the assistant's knowledge index.")
train_app = _group("train", "Train a model.")

IndexDir = Annotated[
    Path | None,
    typer.Option(
        "--index",
        help="Index folder (default $INSIGHTRAY_INDEX or $INSIGHTRAY_HOME/index).",
        show_default=False,
    ),
]
Threads = Annotated[
    int | None, typer.Option("--threads", help="CPU threads (default: all cores).", min=1)
]
#: One thread answers a question fastest: a query is too small to split, and spare cores
#: are often busy.
QueryThreads = Annotated[
    int, typer.Option("--threads", help="CPU threads for torch (1 is fastest per question).", min=1)
]


def _assistant(index_dir: Path | None, threads: int | None) -> Any:
    from insightray.assistant import Assistant, AssistantConfig
    from insightray.assistant.embeddings import EmbedderConfig

    config = AssistantConfig(index_dir=index_dir, embedder=EmbedderConfig(num_threads=threads))
    return Assistant(config)


@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="One question per line (answers in order).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (JSON Lines with --file).")] = False,
    index_dir: IndexDir = None,
    threads: QueryThreads = 1,
) -> None:
    """Answer health questions from the knowledge index, with cited sources."""
    if (question is None) == (file is None):
        raise typer.BadParameter("give a QUESTION or --file FILE (not both)")
    if file is not None:
        try:
            questions = file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise InputNotFoundError(str(file), "cannot read the file", "check the path") from error
    else:
        questions = [question or ""]
    assistant = _assistant(index_dir, threads)
    failures = 0
    for text in questions:
        try:
            answer = assistant.ask(text)
        except InsightRayError as error:
            failures += 1
            if as_json:
                print(json.dumps({"question": text, "error": str(error)}), flush=True)
            else:
                err.print(f"[red]error:[/red] {error}", highlight=False)
            continue
        if as_json:
            print(json.dumps(answer.to_dict(), ensure_ascii=False), flush=True)
        else:
            _show(answer)
    if failures and failures == len(questions):
        raise typer.Exit(1)


@app.command()
def chat(index_dir: IndexDir = None, threads: QueryThreads = 1) -> None:
    """Talk with the assistant in the terminal (quit, exit or Ctrl-D to leave)."""
    out.print("[bold]Insight Ray assistant[/bold] (loading...)")
    assistant = _assistant(index_dir, threads)
    assistant.warm_up()
    out.print("Ask a health question. Type [bold]quit[/bold] or press Ctrl-D to leave.\n")
    conversation: str | None = None
    while True:
        try:
            text = out.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            out.print()
            break
        if text.strip().lower() in ("quit", "exit", ":q"):
            break
        if not text.strip():
            continue
        answer = assistant.ask(text, conversation)
        conversation = answer.conversation_id
        _show(answer)


def _show(answer: Any) -> None:
    style = "red" if answer.emergency else "green" if answer.kind == "extractive" else "yellow"
    intent = answer.intent
    title = f"{intent.primary} / {intent.secondary}" + (
        f" / {intent.qtype}" if intent.qtype else ""
    )
    out.print(Panel(answer.answer, title=title, border_style=style, title_align="left"))
    if answer.sources:
        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("#", "source", "document", "pid", "focus", "score"):
            table.add_column(column)
        table.add_column("url", overflow="fold")
        for hit in answer.sources:
            p = hit.passage
            table.add_row(str(hit.rank), p.source, p.document_id, p.qa_id, p.focus,
                          f"{hit.score:.3f}", p.url)  # fmt: skip
        out.print(table)
    found = [f"{s.type}: {'no ' if s.negated else ''}{s.text}" for s in answer.slots]
    out.print(
        f"[dim]confidence {answer.confidence:.2f}"
        + (f" | focus {answer.focus}" if answer.focus else "")
        + (f" | {'; '.join(found)}" if found else "")
        + f" | {answer.milliseconds:.0f} ms[/dim]\n",
        highlight=False,
    )


@index_app.command("build")
def index_build(
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="MedQuAD zip, folder of .txt/.md/.xml, or CSV (repeatable)."),
    ] = None,
    index_dir: IndexDir = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if up to date.")] = False,
    dense: Annotated[str, typer.Option("--dense", help="auto, flat or hnsw.")] = "auto",
    threads: Threads = None,
    log_path: Annotated[
        Path | None,
        typer.Option("--log", help="Progress log (default: <index>-build.log beside it)."),
    ] = None,
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder",
            help="Passage encoder: onnx-int8 (ONNX Runtime, INT8, all cores: the fastest), "
            "onnx (fp32) or torch (the PyTorch model).",
        ),
    ] = "onnx-int8",
    retriever: Annotated[
        Path | None,
        typer.Option(
            "--retriever",
            help="A fine-tuned retrieval encoder folder (`insightray train retriever`) to "
            "embed passages and questions with (default: the packaged MiniLM).",
        ),
    ] = None,
) -> None:
    """Build (or confirm up to date) the knowledge index: read, chunk, embed, BM25.

    Progress shows in the terminal and is written to a log file every tenth."""
    from insightray.assistant.embeddings import EmbedderConfig
    from insightray.assistant.index import IndexConfig, default_index_dir, open_index

    if dense not in ("auto", "flat", "hnsw"):
        raise typer.BadParameter("use auto, flat or hnsw", param_hint="--dense")
    backends = {"onnx-int8": "onnx-int8", "onnx": "onnx", "torch": "auto"}
    if encoder not in backends:
        raise typer.BadParameter("use onnx-int8, onnx or torch", param_hint="--encoder")
    if retriever is not None and not (retriever / "card.json").is_file():
        raise InputNotFoundError(
            str(retriever),
            "not a retriever folder (no card.json)",
            "give a `train retriever` --out",
        )
    embedder = EmbedderConfig(
        model_path=retriever,
        backend=backends[encoder],  # type: ignore[arg-type]
        num_threads=threads,
    )
    config = IndexConfig(dense=dense, embedder=embedder)  # type: ignore[arg-type]
    folder = index_dir or default_index_dir()
    log_file = log_path or folder.with_name(folder.name + "-build.log")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    index_log = logging.getLogger("insightray.assistant.index")
    index_log.addHandler(handler)
    index_log.setLevel(logging.INFO)
    try:
        index, built = open_index(data or None, folder, config, rebuild=force)
    finally:
        index_log.removeHandler(handler)
        handler.close()
    manifest = index.manifest
    verb = "built" if built else "up to date"
    out.print(
        f"{folder}: {verb}, {manifest['pairs']} question-answer pairs, "
        f"{manifest['passages']} passages ({manifest['dense']})"
        + (
            f", {manifest['embedded']} embedded, {manifest['reused']} reused, "
            f"{manifest['build_seconds']} s"
            if built
            else ""
        ),
        highlight=False,
    )


@train_app.command("intent")
def train_intent(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for card.json + weights.")],
    threads: Annotated[int, typer.Option("--threads", min=1)] = 1,
) -> None:
    """Train the assistant's intent head on LiveQA + MedQuAD question types."""
    from insightray.training.intents.trainer import main as train_main

    raise typer.Exit(train_main(["--out", str(out_dir), "--threads", str(threads)]))


@train_app.command("retriever")
def train_retriever(
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder (card.json + weights).")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="MedQuAD zip or folder (default: the shared data's zip)."),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=2, help="Pairs per batch (in-batch negatives).")
    ] = 32,
    max_pairs: Annotated[
        int | None,
        typer.Option("--max-pairs", min=2, help="Training pairs used (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampling and batching seed.")] = 0,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="CPU threads (default: all cores).")
    ] = None,
) -> None:
    """Fine-tune the packaged MiniLM on MedQuAD question-answer pairs for retrieval.

    Split by document: train, val (checkpoint selection), test (scores on the card).
    Then: `insightray index build --retriever DIR`."""
    from insightray.assistant.knowledge import default_knowledge_path
    from insightray.training.retriever import RetrieverTrainConfig, train_retriever

    config = RetrieverTrainConfig(
        epochs=epochs, batch_size=batch_size, max_pairs=max_pairs, seed=seed, threads=threads
    )
    card = train_retriever(data or default_knowledge_path(), out_dir, config)
    metrics = card.metrics
    out.print(
        f"{out_dir}: held-out documents Recall@5 {metrics['test_recall@5']:.3f} "
        f"(packaged {metrics['test_recall@5_packaged']:.3f}), MRR@10 "
        f"{metrics['test_mrr@10']:.3f} (packaged {metrics['test_mrr@10_packaged']:.3f}), "
        f"{metrics['train_pairs']:.0f} pairs, {metrics['train_seconds']:.0f} s",
        highlight=False,
    )

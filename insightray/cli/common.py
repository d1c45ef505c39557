"""What every command module shares: the typer app, the consoles and per-file processing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from insightray.errors import InputNotFoundError, InsightRayError
from insightray.imaging import expand_inputs

T = TypeVar("T")

app = typer.Typer(
    help="Insight Ray: medical imaging and clinical language AI, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

# Verb groups shared by the command modules (``insightray train detect``, ``train ner``...).
train_app = typer.Typer(help="Train a model.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate a model on labelled data.", no_args_is_help=True)
export_app = typer.Typer(help="Export a model for deployment.", no_args_is_help=True)
classify_app = typer.Typer(help="Classify images with a trained model.", no_args_is_help=True)
optimize_app = typer.Typer(
    help="Make a faster copy of a model (a new model folder whose card names its parent).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(export_app, name="export")
app.add_typer(classify_app, name="classify")
app.add_typer(optimize_app, name="optimize")


def each_file(
    files: list[Path], *, label: str, work: Callable[[Path], T]
) -> Iterator[tuple[Path, T | InsightRayError]]:
    """Run ``work`` on every file (folders expanded), yielding its result or its error.

    One bad file never stops the others; a progress bar shows when there is more than one.
    """
    paths = expand_inputs(files)
    if not paths:
        raise InputNotFoundError(" ".join(map(str, files)), "no files found", "give image files")
    with Progress(console=err, transient=True, disable=len(paths) == 1) as progress:
        task = progress.add_task(label, total=len(paths))
        for path in paths:
            try:
                yield path, work(path)
            except InsightRayError as error:
                err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
                yield path, error
            progress.advance(task)


def finish(failures: int, total: int) -> None:
    """Exit 1 with a count when any file failed."""
    if failures:
        err.print(f"[red]{failures} of {total} files failed[/red]", highlight=False)
        raise typer.Exit(1)


def print_warnings(warnings: tuple[str, ...]) -> None:
    """The out-of-distribution guard's warnings of one image, in yellow, one per line."""
    for warning in warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


def unique_path(target: Path, taken: set[Path]) -> Path:
    """``target``, or ``name-2.png``, ``name-3.png``... if this run already wrote it."""
    candidate, n = target, 1
    while candidate in taken:
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate

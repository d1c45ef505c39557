"""``nlp report``: sections and CheXpert's 14 observations of radiology reports.

Example:
    insightray nlp report "FINDINGS: No pneumothorax. Small left pleural effusion." --json
    insightray nlp report --file report.txt
    insightray nlp report --file reports.jsonl --json   # {"id": ..., "text": ...} per line
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from insightray.cli.common import out
from insightray.cli.nlp import nlp_app
from insightray.errors import InputError, InputNotFoundError

if TYPE_CHECKING:
    from insightray.nlp.reports import ReportLabels


def read_reports(path: Path) -> list[tuple[str | None, str]]:
    """``(id, text)`` pairs from a ``.jsonl`` file of ``{id, text}`` lines, or one text file.

    Raises:
        InputNotFoundError: The file does not exist.
        InputError: A JSONL line is not an object with a ``text`` string.
    """
    if not path.is_file():
        raise InputNotFoundError(str(path), "the file does not exist", "check the path")
    if path.suffix.lower() != ".jsonl":
        return [(path.name, path.read_text(encoding="utf-8"))]
    reports: list[tuple[str | None, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise InputError(
                f"{path.name}:{number}", "not JSON", "write one object a line"
            ) from error
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f"{path.name}:{number}", "no 'text' string", 'give {"id", "text"}')
        report_id = record.get("id")
        reports.append((None if report_id is None else str(report_id), record["text"]))
    return reports


def observations_table(labels: ReportLabels) -> Table:
    """The stated observations of a labelled report with their evidence, as a table."""
    title = f"{labels.id + ': ' if labels.id else ''}{', '.join(s.name for s in labels.sections)}"
    table = Table(title=title)
    for column in ("observation", "status", "evidence"):
        table.add_column(column)
    for observation in labels.observations:
        if observation.status == "absent":
            continue
        details = []
        for e in observation.evidence:
            words = " ".join((*e.laterality, *e.severity, *e.size, *e.change))
            details.append(escape(f"{e.text} [{e.status}, {e.section}] {words}".strip()))
        table.add_row(observation.label, observation.status, "; ".join(details))
    return table


@nlp_app.command("report")
def report(
    text: Annotated[str | None, typer.Argument(help="The report text.")] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A .txt report, or a .jsonl file of {id, text} lines."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per report, one a line.")
    ] = False,
) -> None:
    """CheXpert's 14 observations (positive, negative, uncertain, absent) with evidence."""
    from insightray.nlp.reports import ReportLabeller

    if (text is None) == (file is None):
        raise typer.BadParameter("give TEXT or --file FILE (one of them)")
    reports = [(None, text)] if text is not None else read_reports(Path(str(file)))
    labeller = ReportLabeller()
    for report_id, text in reports:
        labels = labeller.label(text, report_id)
        if as_json:
            print(json.dumps(labels.to_dict(), ensure_ascii=False))
        else:
            out.print(observations_table(labels))

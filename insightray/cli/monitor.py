"""Monitoring verbs: ``monitor profile`` and ``monitor drift``.

``monitor profile`` stores a model's reference profile (``profile.json``) in its folder: the
features, embedding and outputs of the images it was trained on, and the out-of-distribution
thresholds that ``detect`` and ``classify fracture`` (and the service) then apply to every
image. ``monitor drift`` tells whether a set of images differs from a reference set or from a
model's profile. Torch and scipy are imported inside the commands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from insightray.cli.common import app, err, out
from insightray.errors import ConfigError

if TYPE_CHECKING:
    from insightray.engine import Predictor
    from insightray.monitoring.drift import DriftReport
    from insightray.monitoring.embedding import Embedder
    from insightray.monitoring.profile import Sample

monitor_app = typer.Typer(
    help="Monitor models: reference profiles and drift.", no_args_is_help=True
)
app.add_typer(monitor_app, name="monitor")

ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Model card .json, folder with card.json, or bundled name."),
]


@monitor_app.command("profile")
def profile(
    model: Annotated[
        str,
        typer.Option("--model", help="Model card .json, folder with card.json, or bundled name."),
    ],
    data: Annotated[
        Path, typer.Option("--data", help="The training images: a folder, or a .txt list.")
    ],
    rate: Annotated[
        float, typer.Option("--rate", help="False-alarm rate of the OOD thresholds.")
    ] = 0.01,
    modality: Annotated[
        list[str] | None,
        typer.Option("--modality", help="Accepted DICOM modality (repeat); default CR, DX, RG."),
    ] = None,
    body_part: Annotated[
        list[str] | None,
        typer.Option("--body-part", help="Accepted DICOM body part (repeat); default any."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the data is, for the profile.")
    ] = None,
    group_pattern: Annotated[
        str | None,
        typer.Option(
            "--group-pattern",
            help="Regex whose first group of a file name names its source image (augmented "
            "copies stay in one threshold fold), e.g. '^(.+?)\\.rf\\.'.",
        ),
    ] = None,
) -> None:
    """Store a model's reference profile (profile.json) in its folder, from its training data."""
    from insightray.imaging import image_paths
    from insightray.models.catalog import resolve_card
    from insightray.monitoring.profile import RADIOGRAPH_MODALITIES

    card_path = resolve_card(model, default="")
    paths = image_paths(data)
    target = write_profile_with_progress(
        card_path,
        paths,
        data=description or str(data),
        rate=rate,
        modalities=modality or RADIOGRAPH_MODALITIES,
        body_parts=body_part or (),
        groups=None if group_pattern is None else _groups(paths, group_pattern),
    )
    out.print(f"{len(paths)} images profiled; wrote {target}")


#: Training images measured for the reference profile written at the end of a training run.
TRAINING_PROFILE_IMAGES = 300

ProfileOption = Annotated[
    bool,
    typer.Option(
        "--profile/--no-profile",
        help=f"Write the model's reference profile (monitoring; at most "
        f"{TRAINING_PROFILE_IMAGES} training images, seeded) into its folder.",
    ),
]


def training_profile(
    card_path: Path, paths: list[Path], groups: list[str] | None, data: str
) -> None:
    """Write the profile of a freshly trained model from (a sample of) its training images;
    a set too small to profile is reported, not an error (the model stands without it)."""
    shown = min(len(paths), TRAINING_PROFILE_IMAGES)
    try:
        target = write_profile_with_progress(
            card_path,
            paths,
            data=f"{data} ({shown} of {len(paths)} training images, seed 0)",
            groups=groups,
            limit=TRAINING_PROFILE_IMAGES,
        )
    except ConfigError as error:
        err.print(f"no reference profile written: {error}", highlight=False, soft_wrap=True)
        return
    out.print(f"reference profile of {shown} training images -> {target}", highlight=False)


def write_profile_with_progress(card_path: Path, paths: list[Path], **options: Any) -> Path:
    """:func:`~insightray.monitoring.profile.write_profile` with a progress bar (also used
    at the end of ``train fracture`` and ``train detect``)."""
    from insightray.monitoring.profile import write_profile

    limit = options.get("limit")
    total = len(paths) if limit is None else min(limit, len(paths))
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("Profiling", total=total)
        return write_profile(
            card_path, paths, progress=lambda done: progress.advance(task, done), **options
        )


@monitor_app.command("drift")
def drift(
    reference: Annotated[
        str,
        typer.Option("--reference", help="A model with a profile, or a folder / .txt list."),
    ],
    current: Annotated[Path, typer.Option("--current", help="A folder or .txt list of images.")],
    model: ModelOption = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Level of the corrected tests (false discoveries).")
    ] = 0.05,
    permutations: Annotated[
        int, typer.Option("--permutations", min=10, help="Permutations of the MMD test.")
    ] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML report with the plots."),
    ] = None,
) -> None:
    """Do the current images differ from the reference? Prints "drift": true or false.

    Per feature: Kolmogorov-Smirnov (continuous) or chi-squared (categorical), with PSI and
    Jensen-Shannon distance; on the model's embedding: an MMD permutation test. The p-values
    are Benjamini-Hochberg corrected together at --alpha.

    The embedding is the model's (--model, or the reference model, or the default detector).
    --html writes the plots behind the verdict: overlaid histograms, category shares and the
    embedding's two leading principal components.
    """
    from insightray.imaging import image_paths
    from insightray.monitoring.drift import compare_tables
    from insightray.monitoring.profile import load_profile

    reference_card = _model_card(reference)
    stored = load_profile(reference_card) if reference_card is not None else None
    if reference_card is not None and stored is None:
        raise ConfigError(
            f"model {reference}", "it has no reference profile", "run `insightray monitor profile`"
        )
    embedder = _embedder(model if model is not None or reference_card is None else reference_card)
    current_sample = _measure(image_paths(current), embedder, None, "Measuring current")
    if stored is not None:
        reference_table = stored.table
    else:
        reference_table = _measure(image_paths(reference), embedder, None, "Measuring").table
    report = compare_tables(
        reference_table,
        current_sample.table,
        alpha=alpha,
        permutations=permutations,
    )
    if html is not None:
        from insightray.monitoring.drift_html import write_html_report

        write_html_report(html, reference_table, current_sample.table, report)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
        if html is not None:
            out.print(f"wrote {html}")


def _groups(paths: list[Path], pattern: str) -> list[str]:
    """Each file's group: the first group of ``pattern`` in its name (the name if no match)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ConfigError(
            "--group-pattern", f"not a regular expression ({error})", "fix it"
        ) from error
    found = [compiled.search(path.name) for path in paths]
    return [m.group(1) if m and m.groups() else p.name for m, p in zip(found, paths, strict=True)]


def _model_card(name: str) -> Path | None:
    """The card a ``--reference`` names when it is a model, else ``None`` (image folders)."""
    from insightray.models.catalog import bundled_models, resolve_card

    path = Path(name)
    is_model = (path.is_dir() and (path / "card.json").is_file()) or path.suffix == ".json"
    if is_model or (not path.exists() and name in bundled_models()):
        return resolve_card(name, default="")
    return None


def _embedder(model: str | Path | None) -> Embedder:
    from insightray.monitoring.embedding import Embedder

    return Embedder.from_model(model, task="detection" if model is None else None)


def _measure(
    paths: list[Path], embedder: Embedder, predictor: Predictor | None, label: str
) -> Sample:
    from insightray.monitoring.profile import measure

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=len(paths))
        return measure(
            paths,
            embedder,
            predictor,
            progress=lambda done: progress.advance(task, done),
        )


def _print_report(report: DriftReport) -> None:
    verdict = "[red]drift[/red]" if report.drift else "[green]no drift[/green]"
    sizes = f"{report.sizes[0]} reference / {report.sizes[1]} current images"
    table = Table(title=f"{verdict} at alpha {report.alpha} ({sizes})", title_justify="left")
    for column in ("feature", "test", "statistic", "p (BH)", "PSI", "JS"):
        table.add_column(column)
    for test in report.tests:
        flag = "[red]" if test.p_adjusted < report.alpha else ""
        table.add_row(
            f"{flag}{test.feature}",
            test.test,
            f"{test.statistic:.4g}",
            f"{test.p_adjusted:.3g}",
            "-" if test.psi is None else f"{test.psi:.3f}",
            "-" if test.js is None else f"{test.js:.3f}",
        )
    out.print(table)

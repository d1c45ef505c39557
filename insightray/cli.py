"""The ``insightray`` command line: every verb is a thin call into the library."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from insightray.config import data_root
from insightray.errors import InsightRayError
from insightray.imaging import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    Window,
    expand_inputs,
    read_image,
    read_phi,
    write_png,
)
from insightray.imaging.transforms import Clahe

app = typer.Typer(
    help="Insight Ray: medical imaging and clinical language AI, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

Files = Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")]
Frame = Annotated[
    int | None, typer.Option("--frame", help="Frame to read from a multi-frame file.", min=0)
]
MaxPixels = Annotated[
    int, typer.Option("--max-pixels", help="Refuse larger images (decompression-bomb guard).")
]
VoiIndex = Annotated[
    int, typer.Option("--voi-index", help="Which stored window or VOI LUT to use.", min=0)
]


def _each_image(
    files: list[Path], *, progress_label: str, read: Callable[[Path], LoadedImage]
) -> Iterator[tuple[Path, LoadedImage | InsightRayError]]:
    """Read each file, yielding the image or the error; a progress bar for more than one."""
    paths = expand_inputs(files)
    if not paths:
        raise InsightRayError(" ".join(map(str, files)), "no files found", "give image files")
    if len(paths) == 1:
        yield paths[0], _attempt(read, paths[0])
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(progress_label, total=len(paths))
        for path in paths:
            yield path, _attempt(read, path)
            progress.advance(task)


def _attempt(read: Callable[[Path], LoadedImage], path: Path) -> LoadedImage | InsightRayError:
    try:
        return read(path)
    except InsightRayError as error:
        return error


def _finish(failures: int, total: int) -> None:
    if failures:
        err.print(f"[red]{failures} of {total} files failed[/red]", highlight=False)
        raise typer.Exit(1)


@app.command()
def info(
    files: Files,
    show_phi: Annotated[
        bool, typer.Option("--show-phi", help="Also show patient and study identifiers.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    frame: Frame = None,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
) -> None:
    """Show image metadata (no patient identifiers unless --show-phi)."""
    failures = total = 0
    results = _each_image(
        files,
        progress_label="Reading",
        read=lambda p: read_image(p, frame=frame, max_pixels=max_pixels),
    )
    for path, result in results:
        total += 1
        record: dict[str, Any] = {"path": str(path)}
        if isinstance(result, InsightRayError):
            failures += 1
            record["error"] = str(result)
            err.print(f"[red]error:[/red] {result}", highlight=False, soft_wrap=True)
        else:
            record["meta"] = result.meta.to_dict()
            if show_phi and result.meta.source_format == "dicom":
                record["phi"] = read_phi(path)
        if as_json:
            out.print_json(json.dumps(record)) if sys.stdout.isatty() else print(json.dumps(record))
        elif "meta" in record:
            _print_info_table(record)
    _finish(failures, total)


def _print_info_table(record: dict[str, Any]) -> None:
    table = Table(title=record["path"], show_header=False, title_justify="left")
    for key, value in {**record["meta"], **record.get("phi", {})}.items():
        if value is not None:
            table.add_row(key, str(value))
    out.print(table)


@app.command()
def convert(
    files: Files,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNG files.")],
    window: Annotated[
        tuple[float, float] | None,
        typer.Option("--window", metavar="CENTER WIDTH", help="Override the DICOM window."),
    ] = None,
    clahe: Annotated[bool, typer.Option("--clahe", help="Apply CLAHE (clip 2.0, 8x8).")] = False,
    bits: Annotated[int, typer.Option("--bits", help="PNG bit depth: 8 or 16.")] = 8,
    frame: Frame = None,
    voi_index: VoiIndex = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
) -> None:
    """Convert images to 8- or 16-bit grayscale PNG (VOI applied, MONOCHROME1 inverted)."""
    if bits not in (8, 16):
        raise typer.BadParameter("use 8 or 16", param_hint="--bits")
    chosen = Window(window[0], window[1]) if window else None
    enhance = Clahe() if clahe else None
    failures = total = 0
    written: set[Path] = set()
    results = _each_image(
        files,
        progress_label="Converting",
        read=lambda p: read_image(
            p, frame=frame, window=chosen, voi_index=voi_index, max_pixels=max_pixels
        ),
    )
    for path, result in results:
        total += 1
        if isinstance(result, InsightRayError):
            failures += 1
            err.print(f"[red]error:[/red] {result}", highlight=False, soft_wrap=True)
            continue
        pixels = enhance(result.pixels) if enhance else result.pixels
        target = _unique(out_dir / f"{path.stem}.png", written)
        write_png(pixels, target, bits=bits)
        written.add(target)
        out.print(f"{path} -> {target}", highlight=False, soft_wrap=True)
    _finish(failures, total)


def _unique(target: Path, taken: set[Path]) -> Path:
    candidate, n = target, 1
    while candidate in taken:
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write results.")] = Path(
        "runs/demo"
    ),
) -> None:
    """Run the bundled defaults end to end and say what is available."""
    samples = sorted((data_root() / "dicom").glob("*.dcm"))
    if not samples:
        from pydicom.data import get_testdata_file  # bundled with pydicom, offline

        samples = [Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm")]
    out.print(f"[bold]Insight Ray demo[/bold]: {len(samples)} DICOM files -> {out_dir}")
    for path in samples:
        image = read_image(path)
        target = write_png(image.pixels, out_dir / f"{path.stem}.png")
        meta = image.meta
        out.print(
            f"  {path.name}: {meta.modality} {meta.original_size[1]}x{meta.original_size[0]}, "
            f"spacing {meta.pixel_spacing} mm, VOI {meta.voi} -> {target}",
            highlight=False,
        )
    out.print(
        "\nAvailable now: DICOM/PNG/JPEG/TIFF ingestion (`insightray info`, "
        "`insightray convert`).\nNot there yet: the chest X-ray detector, the fracture "
        "classifier, clinical NLP, the assistant and the web service have no trained "
        "models or commands in this version."
    )


def main() -> None:
    """Console entry point: user errors are one line and a non-zero exit, never a traceback."""
    try:
        app()
    except InsightRayError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as error:  # a bug: say so in one line unless debugging is asked for
        if os.environ.get("INSIGHTRAY_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/red] {type(error).__name__}. Please report it; "
            "set INSIGHTRAY_DEBUG=1 to see the traceback.",
            highlight=False,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()

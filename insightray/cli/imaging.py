"""Imaging verbs: ``info`` and ``convert``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from insightray.cli.common import app, each_file, finish, out, unique_path
from insightray.errors import InsightRayError
from insightray.imaging import (
    DEFAULT_MAX_PIXELS,
    Window,
    read_image,
    read_phi,
    write_png,
)
from insightray.imaging.transforms import Clahe

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
    results = each_file(
        files,
        label="Reading",
        work=lambda p: read_image(p, frame=frame, max_pixels=max_pixels),
    )
    for path, result in results:
        total += 1
        record: dict[str, Any] = {"path": str(path)}
        if isinstance(result, InsightRayError):
            failures += 1
            record["error"] = str(result)
        else:
            record["meta"] = result.meta.to_dict()
            if show_phi and result.meta.source_format == "dicom":
                record["phi"] = read_phi(path)
        if as_json:
            print(json.dumps(record))
        elif "meta" in record:
            _print_info_table(record)
    finish(failures, total)


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
    results = each_file(
        files,
        label="Converting",
        work=lambda p: read_image(
            p, frame=frame, window=chosen, voi_index=voi_index, max_pixels=max_pixels
        ),
    )
    for path, result in results:
        total += 1
        if isinstance(result, InsightRayError):
            failures += 1
            continue
        pixels = enhance(result.pixels) if enhance else result.pixels
        target = unique_path(out_dir / f"{path.stem}.png", written)
        write_png(pixels, target, bits=bits)
        written.add(target)
        out.print(f"{path} -> {target}", highlight=False, soft_wrap=True)
    finish(failures, total)

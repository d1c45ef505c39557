"""``insightray demo``: the bundled models end to end on sample files, without the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from insightray.cli.common import app, out
from insightray.config import data_root
from insightray.errors import InsightRayError
from insightray.imaging import read_image, write_png

SAMPLE_NOTE = (
    "58-year-old man with fever and productive cough for 3 days. Denies chest pain. "
    "History of type 2 diabetes on metformin 500 mg twice daily. Chest X-ray: possible "
    "right lower lobe pneumonia; no pleural effusion."
)


def _sample_dicoms() -> list[Path]:
    samples = sorted((data_root() / "dicom").glob("*.dcm"))
    if samples:
        return samples
    from pydicom.data import data_manager  # files bundled with pydicom, offline

    bundled = Path(data_manager.DATA_ROOT) / "test_files"
    return [bundled / "CT_small.dcm", bundled / "MR_small.dcm"]


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write results.")] = Path(
        "runs/demo"
    ),
) -> None:
    """Run the bundled defaults end to end on sample files (images, detector, clinical text)."""
    samples = _sample_dicoms()
    out.print(f"[bold]1. Image ingestion[/bold]: {len(samples)} DICOM files -> {out_dir}")
    for path in samples:
        image = read_image(path)
        target = write_png(image.pixels, out_dir / f"{path.stem}.png")
        meta = image.meta
        out.print(
            f"  {path.name}: {meta.modality} {meta.original_size[1]}x{meta.original_size[0]}, "
            f"spacing {meta.pixel_spacing} mm, VOI {meta.voi} -> {target}",
            highlight=False,
        )
    _detect(samples, out_dir)
    _clinical_text(out_dir)
    out.print(
        "\n[bold]4. Assistant[/bold]: `insightray index build` indexes MedQuAD once (minutes), "
        'then `insightray ask "..."` answers with citations.'
    )
    out.print(
        "\n[bold]5. Fracture classifier[/bold]: `insightray classify fracture FILE --cam DIR`."
        "\n[bold]6. Web service and viewer[/bold]: `insightray serve` (`make run`), then "
        "http://127.0.0.1:8000/."
    )


def _detect(samples: list[Path], out_dir: Path) -> None:
    from insightray.engine import load_predictor, write_overlay

    chests = [p for p in samples if "chest" in p.name] or samples[:1]
    try:
        predictor = load_predictor(task="detection")
    except InsightRayError as error:
        out.print(f"\n[bold]2. Chest X-ray detector[/bold]: not available ({error})")
        return
    card = predictor.card
    out.print(
        f"\n[bold]2. Chest X-ray detector[/bold] {card.name} {card.version} "
        f"(trained on {card.training_data or 'see its card'}):"
    )
    for path in chests:
        image = read_image(path)
        [result] = predictor.predict_images([image], [str(path)])
        overlay = write_overlay(image.pixels, result.detections, out_dir / f"{path.stem}_boxes.png")
        (out_dir / f"{path.stem}_boxes.json").write_text(json.dumps(result.to_dict(), indent=2))
        found = ", ".join(f"{d.class_name} {d.score:.2f}" for d in result.detections) or "none"
        out.print(f"  {path.name}: {found} -> {overlay}", highlight=False)


def _clinical_text(out_dir: Path) -> None:
    from insightray.nlp.pipeline import ClinicalPipeline

    result = ClinicalPipeline().analyze(SAMPLE_NOTE)
    (out_dir / "clinical_note.json").write_text(json.dumps(result.to_dict(), indent=2))
    out.print(f"\n[bold]3. Clinical text[/bold]: {SAMPLE_NOTE}")
    for entity in result.entities:
        flags = [name for name in ("negated", "uncertain", "historical") if getattr(entity, name)]
        out.print(f"  {entity.type:<10} {entity.text!r} {' '.join(flags)}", highlight=False)
    top = ", ".join(f"{p.label} {p.score:.2f}" for p in result.diseases[:3])
    out.print(f"  diseases suggested: {top or 'none'}", highlight=False)

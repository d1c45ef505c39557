"""Labelling verbs: ``label queue`` ranks unlabelled images, ``label export`` writes the
service's saved labels as a training set.

Example:
    insightray label queue --model fracture-roboflow-lite0 --data unlabelled/ --strategy bald \\
        --n 50 --json
    insightray label export --task fracture --out labelled/   # then: train fracture --data
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from insightray.cli.common import app, out
from insightray.errors import InputNotFoundError

label_app = typer.Typer(
    help="Active learning: what to label next, and the labels as training data.",
    no_args_is_help=True,
)
app.add_typer(label_app, name="label")


@label_app.command("queue")
def label_queue(
    data: Annotated[
        list[Path], typer.Option("--data", help="Unlabelled images or folders (repeatable).")
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model card, folder or bundled name (default: fracture)."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="Classifier: entropy, margin, bald, coreset, badge, random. "
            "Detector: entropy, margin, tta, random.",
        ),
    ] = "entropy",
    n: Annotated[int, typer.Option("--n", help="Queue length.")] = 50,
    labelled: Annotated[
        list[Path] | None,
        typer.Option("--labelled", help="Images already labelled: skipped (and covered)."),
    ] = None,
    passes: Annotated[int, typer.Option("--passes", help="MC-dropout passes (bald).")] = 20,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of random, dropout, core-set, BADGE.")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help='{"items": [{"path", "score"}...]}, best first.')
    ] = False,
) -> None:
    """Rank unlabelled images by how much labelling them would teach the model.

    A classifier (the default: the bundled fracture model) offers entropy, margin, MC-dropout
    BALD, core-set (k-center greedy on its embeddings), BADGE (k-means++ seeding on its
    last-layer gradient embeddings) and random; a detector (--model of a
    detection card) offers entropy and margin of its most undecided box, flip-TTA
    disagreement (tta) and random.
    """
    from insightray.active import rank_for_labelling
    from insightray.engine import load_predictor
    from insightray.engine.classification import FracturePredictor
    from insightray.engine.detection import DetectionPredictor
    from insightray.imaging import expand_inputs
    from insightray.models import load_card
    from insightray.models.catalog import default_model, find_task, resolve_card

    paths = [str(p.resolve()) for p in expand_inputs(data)]
    if not paths:
        raise InputNotFoundError(" ".join(map(str, data)), "no images found", "give images")
    done = [str(p.resolve()) for p in expand_inputs(labelled)] if labelled else []
    predictor: FracturePredictor | DetectionPredictor
    card_path = resolve_card(model, default=default_model(find_task("classification").name))
    if load_card(card_path).task == "detection":  # see undecided boxes too
        predictor = load_predictor(card_path, task="detection", conf_threshold=0.05)
    else:
        predictor = load_predictor(card_path, task="classification")
    queue = rank_for_labelling(
        predictor,
        paths,
        strategy,
        n,
        labelled=done,
        passes=passes,
        seed=seed,
    )
    if as_json:
        print(json.dumps(queue.to_dict()))
        return
    table = Table(title=f"label queue: {queue.strategy}, {queue.model}")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("image")
    for rank, item in enumerate(queue.items, start=1):
        table.add_row(str(rank), f"{item.score:.4f}", item.path)
    out.print(table)


@label_app.command("export")
def label_export(
    task: Annotated[str, typer.Option("--task", help="fracture or detection.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the training set.")],
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Detection: share listed in val.txt.")
    ] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write the service's labels in force (newest per study) as a training set.

    Reads the database and encrypted store of $INSIGHTRAY_HOME / $INSIGHTRAY_DATABASE_URL.
    fracture: images/ and images.csv (train fracture --data OUT); detection: images/,
    labels/ (YOLO txt), train.txt, val.txt and data.yaml (train detect --data OUT/data.yaml).
    """
    from insightray.serving.settings import ServeSettings
    from insightray.serving.storage.blobstore import BlobStore
    from insightray.serving.storage.crypto import KeyRing
    from insightray.serving.storage.db import Database
    from insightray.serving.storage.labels import export_labels

    settings = ServeSettings.from_env()
    db = Database.open(settings)
    try:
        store = BlobStore(settings.store_dir, KeyRing.from_settings(settings))
        summary = export_labels(db, store, task, out_dir, val_fraction)
    finally:
        db.close()
    if as_json:
        print(json.dumps(summary.to_dict()))
    else:
        out.print(
            f"{summary.images} labelled images ({summary.positives} positive) -> {out_dir}",
            highlight=False,
        )

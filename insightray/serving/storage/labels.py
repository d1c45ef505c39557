"""Labels a person gives stored studies, and their export in the formats our trainers read.

:func:`save_label` appends a row (never updates one) and its audit record in one
transaction; :func:`labels_in_force` gives the newest label per study for a task;
:func:`export_labels` writes the labelled studies' de-identified images as PNG with

- ``fracture``: ``images.csv`` (``image, group, fractured``), the layout
  :func:`insightray.training.fracture.load_fracture_items` reads (``insightray train fracture
  --data DIR``);
- ``detection``: ``labels/<id>.txt`` in YOLO form (``class cx cy w h``, normalised),
  ``train.txt`` / ``val.txt`` and ``data.yaml``, the layout of ``insightray train detect``.

Example:
    >>> summary = export_labels(db, store, "fracture", out)  # doctest: +SKIP
    >>> summary.to_dict()["images"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from insightray.errors import ConfigError, InputError, InputNotFoundError
from insightray.imaging import read_image, write_png
from insightray.serving.deps import Principal, Services
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.db import Database
from insightray.serving.storage.db.labels import LABEL_TASKS, ImageLabel
from insightray.serving.storage.db.models import Study

__all__ = ["LabelExport", "export_labels", "label_json", "labels_in_force", "save_label"]


def _checked_value(task: str, value: dict[str, Any], study: Study) -> dict[str, Any]:
    """The stored form of a label, or an InputError saying what is wrong."""
    if task not in LABEL_TASKS:
        raise InputError(f"task {task!r}", "no such label task", f"use one of {LABEL_TASKS}")
    if task == "fracture":
        if not isinstance(value.get("fractured"), bool):
            raise InputError("label", "a fracture label needs fractured: true/false", "send it")
        return {"fractured": value["fractured"]}
    boxes = value.get("boxes")
    if not isinstance(boxes, list):
        raise InputError("label", "a detection label needs boxes: [...]", "send [] for none")
    width, height = study.width or 0, study.height or 0
    checked = []
    for box in boxes:
        name, coords = str(box.get("label", "")).strip(), list(box.get("box", []))
        x1, y1, x2, y2 = (float(c) for c in coords) if len(coords) == 4 else (0, 0, 0, 0)
        inside = 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        if not name or len(name) > 64 or not inside:
            raise InputError(
                "box",
                f"{box} is not a named box inside the {width}x{height} image",
                "give label and box [x1, y1, x2, y2] in image pixels",
            )
        checked.append({"label": name, "box": [x1, y1, x2, y2]})
    return {"boxes": checked}


def save_label(
    services: Services,
    who: Principal,
    study: Study,
    task: str,
    value: dict[str, Any],
    started: float | None = None,
) -> ImageLabel:
    """Append ``who``'s label of ``study`` and its audit record, in one transaction.

    Raises:
        InputError: The label does not fit the task or the image.
    """
    row = ImageLabel(
        study_id=study.id,
        task=task,
        value=_checked_value(task, value, study),
        username=who.username,
        role=who.role,
    )
    with services.db.session() as session:
        session.add(row)
        session.flush()
        services.record(who, "label.save", "ok", started, session=session, study_id=study.id)
    return row


def label_json(row: ImageLabel) -> dict[str, Any]:
    """The API form of one label."""
    return {
        "id": row.id,
        "study_id": row.study_id,
        "task": row.task,
        "value": row.value,
        "user": row.username,
        "created_at": row.created_at.isoformat(),
    }


def labels_in_force(
    db: Database, task: str, study_ids: Sequence[str] | None = None
) -> dict[str, ImageLabel]:
    """The newest label of ``task`` per live study (optionally only among ``study_ids``)."""
    query = (
        select(ImageLabel)
        .join(Study, Study.id == ImageLabel.study_id)
        .where(ImageLabel.task == task, Study.status != "deleted")
        .order_by(ImageLabel.created_at, ImageLabel.id)
    )
    if study_ids is not None:
        query = query.where(ImageLabel.study_id.in_(list(study_ids)))
    with db.session(read_only=True) as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    return {row.study_id: row for row in rows}  # later rows overwrite earlier ones


@dataclass(frozen=True)
class LabelExport:
    """What :func:`export_labels` wrote."""

    task: str
    out: Path
    images: int
    positives: int
    classes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "task": self.task,
            "out": str(self.out),
            "images": self.images,
            "positives": self.positives,
            "classes": list(self.classes),
        }


def _in_val(study_id: str, val_fraction: float) -> bool:
    digest = int(hashlib.sha256(study_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < val_fraction


def export_labels(
    db: Database, store: BlobStore, task: str, out: Path, val_fraction: float = 0.2
) -> LabelExport:
    """Write every live study's label in force for ``task`` as a training set in ``out``.

    Images are the stored (de-identified) studies at their default window, as 16-bit PNG
    named by study id. Detection studies go to ``val.txt`` by a hash of their id
    (``val_fraction``), the rest to ``train.txt``.

    Raises:
        ConfigError: An unknown task.
        InputNotFoundError: No study has a label for ``task``.
    """
    if task not in LABEL_TASKS:
        raise ConfigError(f"task {task!r}", "no such label task", f"use one of {LABEL_TASKS}")
    labels = labels_in_force(db, task)
    if not labels:
        raise InputNotFoundError(f"{task} labels", "no study is labelled", "label some first")
    with db.session(read_only=True) as session:
        studies = {s.id: s for s in session.scalars(select(Study).where(Study.id.in_(labels)))}
        session.expunge_all()
    (out / "images").mkdir(parents=True, exist_ok=True)
    for study_id in labels:
        pixels = read_image(store.get(studies[study_id].sha256), name="upload").pixels
        write_png(pixels, out / "images" / f"{study_id}.png", bits=16)
    if task == "fracture":
        with (out / "images.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "group", "fractured"])
            for study_id, row in sorted(labels.items()):
                writer.writerow([f"images/{study_id}.png", study_id, int(row.value["fractured"])])
        positives = sum(int(row.value["fractured"]) for row in labels.values())
        return LabelExport(task, out, len(labels), positives)
    return _write_yolo(labels, studies, out, val_fraction)


def _write_yolo(
    labels: dict[str, ImageLabel], studies: dict[str, Study], out: Path, val_fraction: float
) -> LabelExport:
    classes = tuple(sorted({box["label"] for row in labels.values() for box in row.value["boxes"]}))
    (out / "labels").mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "val": []}
    positives = 0
    for study_id, row in sorted(labels.items()):
        width, height = studies[study_id].width or 1, studies[study_id].height or 1
        lines = []
        for box in row.value["boxes"]:
            x1, y1, x2, y2 = box["box"]
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            w, h = (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{classes.index(box['label'])} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        positives += bool(lines)
        (out / "labels" / f"{study_id}.txt").write_text("".join(lines), encoding="utf-8")
        split = "val" if _in_val(study_id, val_fraction) else "train"
        lists[split].append(f"images/{study_id}.png\n")
    if not lists["val"]:  # a tiny export: validate on one training image rather than none
        lists["val"] = lists["train"][:1]
    for split, entries in lists.items():
        (out / f"{split}.txt").write_text("".join(entries), encoding="utf-8")
    names = json.dumps(list(classes))  # a JSON list is a YAML flow sequence
    (out / "data.yaml").write_text(
        f"train: train.txt\nval: val.txt\nnames: {names}\n", encoding="utf-8"
    )
    return LabelExport("detection", out, len(labels), positives, classes)

"""The labelling loop over HTTP: queue, save (audited, with user and time), export, train.

Real fracture radiographs are uploaded, ranked by the served fracture model, labelled through
the API, exported with :func:`export_labels` and read back by the trainers' own readers; on
SQLite the export also trains the fracture classifier for a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from insightray.cli.common import app
from insightray.config import data_root
from insightray.serving.storage.db.models import AuditRecord
from insightray.serving.storage.labels import export_labels
from insightray.training.detection.datasets.yolo import label_path, parse_label_file
from insightray.training.fracture import FractureTrainConfig, train_fracture
from insightray.training.fracture.dataset import load_fracture_items
from tests.serving.api.conftest import Api

FRACTURE_DIR = data_root() / "fracture" / "bone_fracture_roboflow"


def fracture_images(count: int) -> list[tuple[Path, int]]:
    """``count`` real images, half fractured, each from a different source group."""
    if not (FRACTURE_DIR / "images.csv").is_file():
        pytest.skip("bone fracture data not found")
    rows = (FRACTURE_DIR / "images.csv").read_text().splitlines()[1:]
    chosen: dict[int, list[tuple[Path, int]]] = {0: [], 1: []}
    groups: set[str] = set()
    for row in rows:
        image, group, fractured = row.split(",")[:3]
        if group not in groups and len(chosen[int(fractured)]) < count // 2:
            groups.add(group)
            chosen[int(fractured)].append((FRACTURE_DIR / image, int(fractured)))
    return chosen[0] + chosen[1]


def test_queue_label_export_and_train(api: Api, tmp_path: Path) -> None:
    headers = api.as_role("clinician")
    images = fracture_images(8)
    studies = {api.upload(path)["id"]: label for path, label in images}

    response = api.client.get("/v1/labels/queue?strategy=bald&n=5", headers=headers)
    assert response.status_code == 200, response.text
    queue = response.json()
    assert len(queue["items"]) == 5 and queue["strategy"] == "bald"
    scores = [item["score"] for item in queue["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {item["study_id"] for item in queue["items"]} <= set(studies)

    for study_id, label in studies.items():
        body = {"task": "fracture", "fractured": bool(label)}
        saved = api.client.post(f"/v1/labels/{study_id}", json=body, headers=headers)
        assert saved.status_code == 201, saved.text
        assert saved.json()["user"] == "clinician1" and saved.json()["created_at"]
    first = next(iter(studies))
    relabel = {"task": "fracture", "fractured": not studies[first]}  # a correction...
    api.client.post(f"/v1/labels/{first}", json=relabel, headers=headers)
    api.client.post(f"/v1/labels/{first}", json={"task": "fracture", "fractured": bool(
        studies[first])}, headers=headers)  # fmt: skip  # ...and its reversal
    history = api.client.get(f"/v1/labels/{first}", headers=headers).json()["items"]
    assert [h["value"]["fractured"] for h in history] == [
        bool(studies[first]),
        not studies[first],
        bool(studies[first]),
    ]
    with api.services.db.session(read_only=True) as session:
        actions = list(session.scalars(select(AuditRecord.action)))
    assert actions.count("label.save") == len(studies) + 2
    assert "label.queue" in actions

    after = api.client.get("/v1/labels/queue", headers=headers).json()
    assert after["items"] == []  # everything is labelled

    out = tmp_path / "export"
    summary = export_labels(api.services.db, api.services.store, "fracture", out)
    assert summary.images == len(studies) and summary.positives == sum(studies.values())
    items = load_fracture_items(out)
    assert {(item.path.stem, item.label) for item in items} == set(studies.items())
    if api.services.db.dialect == "sqlite":  # one tiny training run is enough
        config = FractureTrainConfig(
            data=str(out), image_size=64, max_steps=2, batch_size=2, val_fraction=0.25,
            test_fraction=0.25, amp=False, device="cpu", out=str(tmp_path / "run"),
            patience=0,
        )  # fmt: skip
        result = train_fracture(config, log=lambda _: None)
        assert result.card_path.is_file() and result.steps == 2


def test_box_labels_round_trip_through_the_yolo_export(api: Api, tmp_path: Path) -> None:
    headers = api.as_role("clinician")
    study = api.upload(fracture_images(2)[1][0])
    width, height = study["width"], study["height"]
    boxes = [
        {"label": "fracture", "box": [10.0, 20.0, 110.0, 90.0]},
        {"label": "line", "box": [0.0, 0.0, float(width), float(height)]},
    ]
    saved = api.client.post(
        f"/v1/labels/{study['id']}", json={"task": "detection", "boxes": boxes}, headers=headers
    )
    assert saved.status_code == 201, saved.text
    summary = export_labels(api.services.db, api.services.store, "detection", tmp_path)
    assert summary.classes == ("fracture", "line")
    image = tmp_path / "images" / f"{study['id']}.png"
    parsed, classes = parse_label_file(label_path(image), 2, (height, width))
    assert [int(c) for c in classes] == [0, 1]
    assert parsed.ravel().tolist() == pytest.approx([v for b in boxes for v in b["box"]], abs=0.01)
    assert 'names: ["fracture", "line"]' in (tmp_path / "data.yaml").read_text()

    settings = api.services.settings  # the CLI verb writes the same export
    env = {"INSIGHTRAY_HOME": str(settings.home), "INSIGHTRAY_DATABASE_URL": settings.database_url}
    args = ["label", "export", "--task", "detection", "--out", str(tmp_path / "cli"), "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["classes"] == ["fracture", "line"]
    cli_labels = (tmp_path / "cli" / "labels" / f"{study['id']}.txt").read_text()
    assert cli_labels == label_path(image).read_text()
    missing = CliRunner().invoke(
        app, ["label", "export", "--task", "fracture", "--out", str(tmp_path / "none")], env=env
    )
    assert missing.exit_code != 0  # nothing labelled for fracture


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"task": "fracture"}, 422),
        ({"task": "fracture", "fractured": "maybe"}, 422),
        ({"task": "detection", "boxes": [{"label": "x", "box": [0, 0, 1e6, 5]}]}, 422),
        ({"task": "detection", "boxes": [{"label": "x", "box": [5, 5, 1, 1]}]}, 422),
        ({"task": "segmentation", "fractured": True}, 422),
        ({"task": "fracture", "fractured": True, "extra": 1}, 422),
    ],
)
def test_bad_labels_are_refused(api: Api, body: dict[str, object], status: int) -> None:
    study = api.upload(fracture_images(2)[0][0])
    response = api.client.post(
        f"/v1/labels/{study['id']}", json=body, headers=api.as_role("clinician")
    )
    assert response.status_code == status, response.text
    assert "detail" in response.json() or "error" in response.json()


def test_labels_need_permission_and_ownership(api: Api) -> None:
    study = api.upload(fracture_images(2)[0][0])
    body = {"task": "fracture", "fractured": True}
    auditor = api.client.post(f"/v1/labels/{study['id']}", json=body,
                              headers=api.as_role("auditor"))  # fmt: skip
    assert auditor.status_code == 403
    other = api.client.post(f"/v1/labels/{study['id']}", json=body,
                            headers=api.as_role("researcher"))  # fmt: skip
    assert other.status_code == 404  # someone else's study
    assert api.client.get("/v1/labels/queue", headers=api.as_role("auditor")).status_code == 403
    missing = api.client.post("/v1/labels/nope", json=body, headers=api.as_role("clinician"))
    assert missing.status_code == 404

"""The labelling loop with a person in it, in Chromium: a clinician uploads six fracture
radiographs and a chest film, walks the queue the served fracture model ranks, marks fracture /
no fracture (buttons and keys) and corrects the detector's boxes on the chest film (move,
delete, draw one of the detector's classes); ``insightray label export`` then writes the
labels, and the fracture export trains a model. An auditor is not offered the mode."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from insightray.training.detection.datasets.yolo import label_path
from insightray.training.fracture import FractureTrainConfig, train_fracture
from insightray.training.fracture.dataset import load_fracture_items
from tests.serving.api.test_api_labels import fracture_images
from tests.web.conftest import LABELLER, MONITOR, Service, _cli
from tests.web.test_viewer import CHEST, drop_file, shot, sign_in

pytestmark = pytest.mark.browser


def _get(service: Service, path: str) -> Any:
    token = httpx.post(
        f"{service.url}/v1/auth/token", data={"username": LABELLER[0], "password": LABELLER[1]}
    ).json()["access_token"]
    response = httpx.get(f"{service.url}{path}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def _screen(page: Page, x: float, y: float) -> tuple[float, float]:
    """The page position of image point (x, y) on the viewer's canvas."""
    canvas = page.locator("#canvas")
    frame = canvas.bounding_box()
    assert frame is not None
    scale = float(canvas.get_attribute("data-scale") or 1)
    ox, oy = (float(v) for v in (canvas.get_attribute("data-offset") or "0,0").split(","))
    return frame["x"] + ox + x * scale, frame["y"] + oy + y * scale


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*_screen(page, *end), steps=5)
    page.mouse.up()


def _rows(page: Page) -> list[tuple[str, list[float]]]:
    """The boxes listed in the panel: (class, [x1, y1, x2, y2])."""
    rows = page.locator(".label-box")
    return [
        (
            rows.nth(i).locator("select").input_value(),
            [float(v) for v in (rows.nth(i).get_attribute("data-box") or "").split(",")],
        )
        for i in range(rows.count())
    ]


def _free_corner(boxes: list[list[float]], width: float, height: float) -> tuple[float, float]:
    """A corner of the image (5 % in) with no box within 20 % of it."""
    for fx, fy in ((0.05, 0.05), (0.75, 0.05), (0.05, 0.8), (0.75, 0.8)):
        x, y = fx * width, fy * height
        clear = all(
            b[2] < x - 0.02 * width or b[0] > x + 0.2 * width or
            b[3] < y - 0.02 * height or b[1] > y + 0.2 * height
            for b in boxes
        )  # fmt: skip
        if clear:
            return x, y
    pytest.fail(f"no free corner among the model's boxes {boxes}")


def _correct_boxes(page: Page, service: Service, study_id: str) -> list[tuple[str, list[float]]]:
    """Move the model's top box, delete its first, draw a box of another class."""
    results = _get(service, f"/v1/studies/{study_id}/results")["items"]
    model_boxes = [r for r in results if r["task"] == "cxr"][-1]["findings"]
    expect(page.locator(".label-box")).to_have_count(len(model_boxes))  # the model's own boxes
    assert [label for label, _ in _rows(page)] == [f["label"] for f in model_boxes]
    canvas = page.locator("#canvas")
    width = float(canvas.get_attribute("data-full-width") or 0)
    height = float(canvas.get_attribute("data-full-height") or 0)
    pixel = 1 / float(canvas.get_attribute("data-scale") or 1)  # one screen pixel, in the image
    if model_boxes:
        x1, y1, x2, y2 = _rows(page)[-1][1]
        centre = ((x1 + x2) / 2, (y1 + y2) / 2)
        step = min(x1, 30 * pixel)
        _drag(page, centre, (centre[0] - step, centre[1]))
        moved = _rows(page)[-1][1]
        assert abs(moved[0] - (x1 - step)) <= 2 * pixel and abs(moved[2] - (x2 - step)) <= 2 * pixel
        assert abs(moved[1] - y1) <= 2 * pixel
    if len(model_boxes) > 1:
        page.locator(".label-box").first.get_by_role("button", name="Delete box").click()
        expect(page.locator(".label-box")).to_have_count(len(model_boxes) - 1)
    classes = page.locator("#label-class option").all_inner_texts()
    assert len(classes) > 1  # the detector's classes, not just those it found here
    page.select_option("#label-class", classes[1])
    before = page.locator(".label-box").count()
    x, y = _free_corner([box for _, box in _rows(page)], width, height)
    _drag(page, (x, y), (x + 0.15 * width, y + 0.1 * height))
    expect(page.locator(".label-box")).to_have_count(before + 1)
    label, box = _rows(page)[-1]
    assert label == classes[1]
    assert abs(box[0] - x) <= 2 * pixel and abs(box[3] - (y + 0.1 * height)) <= 2 * pixel
    kept = _rows(page)
    _drag(page, (x, y + 0.12 * height), (x + 0.05 * width, y + 0.17 * height))  # one too many
    expect(page.locator(".label-box")).to_have_count(before + 2)
    page.keyboard.press("Delete")  # removes the selected box: the one just drawn
    expect(page.locator(".label-box")).to_have_count(before + 1)
    assert _rows(page) == kept
    return kept


def test_walk_the_queue_label_export_and_train(
    page: Page, service: Service, shared_data: Path, screenshots: Path, tmp_path: Path
) -> None:
    sign_in(page, MONITOR)  # an auditor: no labelling mode
    expect(page.locator('[data-tab="label"]')).to_be_hidden()
    page.click("#signout-button")

    sign_in(page, LABELLER)
    page.select_option("#auto-task", "")
    images = fracture_images(6)
    for count, (path, _) in enumerate(images, start=1):
        drop_file(page, path, "image/jpeg")
        expect(page.locator(".study")).to_have_count(count, timeout=60_000)
    page.select_option("#auto-task", "cxr")
    drop_file(page, shared_data / CHEST, "application/dicom")
    expect(page.locator(".study")).to_have_count(7, timeout=60_000)
    expect(page.locator("#detection-card")).to_be_visible(timeout=120_000)

    page.keyboard.press("k")
    expect(page.locator("#tab-label")).to_be_visible()
    page.select_option("#label-strategy", "margin")
    page.click("#label-start")
    expect(page.locator("#label-item")).to_be_visible(timeout=120_000)
    expect(page.locator("#label-queue-model")).to_contain_text("margin")

    saved: dict[str, Any] = {}
    fracture_answers = iter([True, False, True, False, True, False])
    for step in range(7):
        item = page.locator("#label-item")
        expect(page.locator("#label-saved")).to_have_text("Not labelled yet.", timeout=60_000)
        expect(item).to_contain_text(f"Item {step + 1} of 7")
        study_id = item.get_attribute("data-study-id") or ""
        if item.get_attribute("data-task") == "detection":
            saved[study_id] = _correct_boxes(page, service, study_id)
            shot(page, screenshots, "40-labelling-boxes")
            page.locator("#canvas").focus()
            page.keyboard.press("s")
        else:
            fractured = next(fracture_answers)
            saved[study_id] = fractured
            if step % 2:  # the keys and the buttons both label
                page.locator("#canvas").focus()
                page.keyboard.press("y" if fractured else "n")
            else:
                page.click("#label-yes" if fractured else "#label-no")
        expect(page.locator(".label-log-item")).to_have_count(step + 1)
        expect(page.locator(".label-log-item").last).to_contain_text(LABELLER[0])
    expect(page.locator("#label-done")).to_contain_text("Queue done: 7 of 7 labelled")
    shot(page, screenshots, "41-labelling-done")

    for study_id, expected in saved.items():  # stored with the user and time
        history = _get(service, f"/v1/labels/{study_id}")["items"]
        assert len(history) == 1 and history[0]["user"] == LABELLER[0] and history[0]["created_at"]
        if isinstance(expected, bool):
            assert history[0]["value"] == {"fractured": expected}
        else:
            got = [(b["label"], b["box"]) for b in history[0]["value"]["boxes"]]
            assert [label for label, _ in got] == [label for label, _ in expected]
            for (_, box), (_, want) in zip(got, expected, strict=True):
                assert max(abs(a - b) for a, b in zip(box, want, strict=True)) < 0.2

    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTRAY_")}
    env["INSIGHTRAY_HOME"] = str(service.home)
    for task in ("fracture", "detection"):
        args = ["label", "export", "--task", task, "--out", str(tmp_path / task), "--json"]
        done = subprocess.run([*_cli(), *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["images"] == (6 if task == "fracture" else 1)
    chest = next(k for k, v in saved.items() if not isinstance(v, bool))
    lines = label_path(tmp_path / "detection" / "images" / f"{chest}.png").read_text().splitlines()
    assert len(lines) == len(saved[chest])

    items = load_fracture_items(tmp_path / "fracture")
    assert {(i.path.stem, bool(i.label)) for i in items} == {
        (k, v) for k, v in saved.items() if isinstance(v, bool)
    }
    config = FractureTrainConfig(
        data=str(tmp_path / "fracture"), image_size=64, max_steps=2, batch_size=2,
        val_fraction=0.34, test_fraction=0.34, amp=False, device="cpu",
        out=str(tmp_path / "run"), patience=0,
    )  # fmt: skip
    result = train_fracture(config, log=lambda _: None)
    assert result.card_path.is_file() and result.steps == 2

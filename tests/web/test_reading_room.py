"""The reading room, second part, in Chromium against the real service: a multi-frame image
scrolled frame by frame (wheel, arrow keys, slider), and a prior study of the same patient
opened side by side with linked window/level and zoom.

The documentation's screenshots of both (``multi-frame``, ``comparison``) come from here:
``INSIGHTRAY_DOCS_IMAGES=1`` writes them to ``docs/images/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Page, expect
from pydicom import examples
from pydicom.uid import generate_uid

from tests.web.conftest import RADIOLOGIST, RecordedPage
from tests.web.test_reading_tools import docs_shot, drag, open_file, screen_point
from tests.web.test_viewer import CHEST, canvas, sign_in, wait_canvas

pytestmark = pytest.mark.browser

#: A real 30-frame ultrasound cine loop (JPEG baseline, YBR) bundled with pydicom.
CINE = Path(examples.get_path("ybr_color"))

#: The sum of the drawn image's pixels (changes when another frame is shown).
CANVAS_SUM = """(selector) => {
  const canvas = document.querySelector(selector);
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;
}"""


def test_a_cine_loop_scrolls_frame_by_frame(
    recorded: RecordedPage, screenshots: Path, docs_images: Path
) -> None:
    page = recorded.page
    sign_in(page, RADIOLOGIST)
    open_file(page, CINE)
    wait_canvas(page, "frame", "0")
    expect(page.locator("#frame-bar")).to_be_visible()
    expect(page.locator("#frame-label")).to_have_text("frame 1 / 30")
    first = page.evaluate(CANVAS_SUM, "#canvas")
    zoom = canvas(page, "scale")

    box = page.locator("#canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 120)  # the wheel steps frames (Ctrl+wheel zooms)
    wait_canvas(page, "frame", "1")
    assert canvas(page, "scale") == zoom
    page.locator("#canvas").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    wait_canvas(page, "frame", "3")
    expect(page.locator("#frame-label")).to_have_text("frame 4 / 30")
    page.keyboard.press("ArrowLeft")
    wait_canvas(page, "frame", "2")
    page.locator("#frame-slider").fill("30")
    wait_canvas(page, "frame", "29")
    expect(page.locator("#frame-label")).to_have_text("frame 30 / 30")
    page.wait_for_timeout(100)  # the frame is drawn on the next animation frame
    last = page.evaluate(CANVAS_SUM, "#canvas")
    assert last != first, "frame 30 is drawn differently from frame 1"
    asked = {url.split("frame=")[1].split("&")[0] for url in recorded.requests if "frame=" in url}
    assert {"1", "3", "2", "29"} <= asked, asked  # each frame from the service
    page.keyboard.press("ArrowRight")  # the last frame stays the last
    expect(page.locator("#frame-label")).to_have_text("frame 30 / 30")
    # A measurement belongs to the frame it was made on.
    page.keyboard.press("l")
    drag(page, screen_point(page, 60, 120), screen_point(page, 260, 120))
    item = page.locator('.measurement[data-kind="length"]')
    expect(item).to_have_attribute("data-id", re.compile(r"\w{8,}"))
    expect(item).to_have_attribute("data-frame", "29")
    expect(item.locator(".measurement-kind")).to_have_text("Length · frame 30")
    wait_canvas(page, "measurements", "1")
    page.screenshot(path=str(screenshots / "25-multi-frame.png"))
    docs_shot(page, docs_images, "multi-frame", ".viewer")
    page.keyboard.press("ArrowLeft")
    wait_canvas(page, "frame", "28")
    wait_canvas(page, "measurements", "0")


def refiled(source: Path, target: Path, patient_id: str, study_date: str) -> Path:
    """A real image re-filed as a study of ``patient_id`` on ``study_date`` (new UIDs)."""
    ds = pydicom.dcmread(source)
    ds.PatientID, ds.PatientName, ds.StudyDate = patient_id, "Compare^Test", study_date
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(target)
    return target


def test_a_prior_of_the_same_patient_opens_beside_with_linked_views(
    page: Page, shared_data: Path, tmp_path: Path, screenshots: Path, docs_images: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    open_file(page, refiled(shared_data / CHEST, tmp_path / "old.dcm", "PT-WEB-9", "20240301"))
    wait_canvas(page, "frame", "0")
    expect(page.locator("#frame-bar")).to_be_hidden()
    open_file(page, refiled(shared_data / CHEST, tmp_path / "new.dcm", "PT-WEB-9", "20250301"))
    select = page.locator("#prior-select")
    expect(select).to_be_enabled()
    options = select.locator("option").all_inner_texts()
    assert options[0] == "Priors (1)" and options[1].endswith("365 days earlier"), options
    assert "2024" not in page.content()

    page.locator("#canvas").focus()
    page.keyboard.press("c")
    expect(page.locator("#prior-pane")).to_be_visible()
    prior = page.locator("#prior-canvas")
    page.wait_for_function("() => document.querySelector('#prior-canvas').dataset.window !== ''")
    expect(page.locator("#prior-label")).to_contain_text("365 days earlier")

    def linked() -> None:
        page.wait_for_function(
            """() => {
              const a = document.querySelector('#canvas').dataset;
              const b = document.querySelector('#prior-canvas').dataset;
              return a.window === b.window && a.zoom === b.zoom;
            }"""
        )

    linked()
    page.keyboard.press("3")  # another window preset on the current study
    linked()
    window_after_preset = canvas(page, "window")
    page.keyboard.press("+")
    page.keyboard.press("+")
    page.wait_for_function("() => Number(document.querySelector('#canvas').dataset.zoom) > 1.5")
    linked()
    # Window/level dragged on the prior moves the current study's too.
    box = prior.bounding_box()
    assert box is not None
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    drag(page, centre, (centre[0] + 60, centre[1] + 40))
    linked()
    assert canvas(page, "window") != window_after_preset
    page.screenshot(path=str(screenshots / "26-comparison.png"))
    docs_shot(page, docs_images, "comparison", ".viewer")
    page.keyboard.press("c")
    expect(page.locator("#prior-pane")).to_be_hidden()


def test_measurements_download_as_a_dicom_sr(page: Page, shared_data: Path, tmp_path: Path) -> None:
    import highdicom as hd

    from tests.web.test_reading_tools import CHEST_SPACING_MM

    sign_in(page, RADIOLOGIST)
    open_file(page, refiled(shared_data / CHEST, tmp_path / "sr.dcm", "PT-WEB-SR", "20250101"))
    expect(page.locator("#measure-sr")).to_be_hidden()  # nothing measured yet
    page.locator("#canvas").focus()
    page.keyboard.press("l")
    drag(page, screen_point(page, 200, 500), screen_point(page, 200 + 40 / CHEST_SPACING_MM, 500))
    expect(page.locator('.measurement[data-kind="length"]')).to_have_attribute(
        "data-id", re.compile(r"\w{8,}")
    )
    with page.expect_download() as download:
        page.locator("#measure-sr").click()
    saved = tmp_path / "measurements.sr.dcm"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "measurements.sr.dcm"
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(saved))
    (group,) = sr.content.get_planar_roi_measurement_groups()
    (length,) = group.get_measurements()
    assert (length.name.meaning, length.unit.value) == ("Length", "mm")
    assert abs(length.value - 40.0) <= 0.5

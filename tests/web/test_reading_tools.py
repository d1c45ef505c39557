"""The reading tools as a radiologist uses them, in Chromium against the real service:
measurement in mm saved with the study, the tag browser with and without PHI rights, the
worklist's AI summary after a reload, duplicate uploads, MONOCHROME1 and preset windows, and
a large image streamed as a level, then a full-detail tile.

The documentation's screenshots (worklist, measurement, tag browser) come from these tests:
``INSIGHTRAY_DOCS_IMAGES=1`` writes them to ``docs/images/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import ANALYST, RADIOLOGIST
from tests.web.test_viewer import CHEST, canvas, fracture_image, sign_in, wait_canvas

pytestmark = pytest.mark.browser

MONOCHROME1_CHEST = "dicom/cr_chest_RG1_UNCI.dcm"  # WC 15000 / WW 30000
CT_SLICE = "dicom/ct_brain_slice.dcm"  # two windows, explained as WINDOW1 and WINDOW2
CHEST_SPACING_MM = 0.168  # PixelSpacing of CHEST

#: Mean brightness of the drawn image's centre and of its border strip (screen pixels).
CENTRE_AND_BORDER = """() => {
  const canvas = document.querySelector("#canvas");
  const [ox, oy] = canvas.dataset.offset.split(",").map(Number);
  const scale = Number(canvas.dataset.scale), dpr = window.devicePixelRatio || 1;
  const w = Number(canvas.dataset.fullWidth) * scale * dpr;
  const h = Number(canvas.dataset.fullHeight) * scale * dpr;
  const mean = (x, y, cw, ch) => {
    const left = Math.round(ox * dpr + x), top = Math.round(oy * dpr + y);
    const context = canvas.getContext("2d");
    const d = context.getImageData(left, top, Math.round(cw), Math.round(ch)).data;
    let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / (d.length / 4);
  };
  return [mean(w * 0.4, h * 0.4, w * 0.2, h * 0.2), mean(2, 2, w - 4, h * 0.04)];
}"""


def docs_shot(page: Page, folder: Path, name: str, selector: str) -> None:
    """A small PNG of one part of the page, for the documentation."""
    page.locator(selector).screenshot(path=str(folder / f"{name}.png"))


def open_file(page: Page, path: Path, task: str = "") -> None:
    """Upload with the given auto-analysis and wait until the image is on the canvas (a file
    this user sent before is opened from the duplicate notice)."""
    page.select_option("#auto-task", task)
    page.set_input_files("#file-input", str(path))
    page.wait_for_function(
        "() => document.querySelector('#canvas').dataset.window !== ''"
        " || document.querySelector('.upload.duplicate') !== null"
    )
    duplicate = page.locator(".upload.duplicate")
    if duplicate.count():
        duplicate.first.get_by_role("button", name="Open it").click()
    page.wait_for_function("() => document.querySelector('#canvas').dataset.window !== ''")


def screen_point(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where the image pixel (x, y) is on the page."""
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    ox, oy = (float(v) for v in canvas(page, "offset").split(","))
    scale = float(canvas(page, "scale"))
    return box["x"] + ox + x * scale, box["y"] + oy + y * scale


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def test_a_50_mm_line_reads_50_mm_and_comes_back_after_a_reload(
    page: Page, shared_data: Path, screenshots: Path, docs_images: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    open_file(page, shared_data / CHEST)
    page.locator("#canvas").focus()
    page.keyboard.press("l")
    length_px = 50.0 / CHEST_SPACING_MM
    drag(page, screen_point(page, 300, 600), screen_point(page, 300 + length_px, 600))
    item = page.locator('.measurement[data-kind="length"]')
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-id", re.compile(r"\w{8,}"))  # saved on the service
    value = item.locator(".measurement-value").inner_text()
    match = re.fullmatch(r"([\d.]+) mm", value)
    assert match, f"the length reads {value!r}"
    assert abs(float(match.group(1)) - 50.0) <= 0.5
    # An ellipse region gives its mean and SD in the image's values.
    page.keyboard.press("e")
    drag(page, screen_point(page, 400, 300), screen_point(page, 560, 420))
    region = page.locator('.measurement[data-kind="ellipse"] .measurement-value')
    expect(region).to_have_text(re.compile(r"mean [\d.]+ ± [\d.]+ value · \d+ mm²"))
    wait_canvas(page, "measurements", "2")
    shot_path = docs_images
    page.screenshot(path=str(screenshots / "21-measurement.png"))
    docs_shot(page, shot_path, "measurement", ".viewer")

    page.reload()
    expect(page.locator("#app")).to_be_visible()
    page.locator(".study").first.click()
    wait_canvas(page, "measurements", "2")
    again = page.locator('.measurement[data-kind="length"] .measurement-value')
    expect(again).to_have_text(value)


def test_tag_browser_shows_identifying_values_only_to_roles_allowed(
    browser_page_pair: tuple[Page, Page], shared_data: Path, docs_images: Path
) -> None:
    clinician, researcher = browser_page_pair
    for page, user in ((clinician, RADIOLOGIST), (researcher, ANALYST)):
        sign_in(page, user)
        open_file(page, shared_data / CHEST)
        page.keyboard.press("m")
        expect(page.locator("#tags-body tr").first).to_be_visible()
    # De-identified on ingest: names and dates are empty, UIDs replaced (2.25...); the
    # clinician sees those stored values, the researcher sees none of them.
    study_uid = clinician.locator('#tags-body tr[data-keyword="StudyInstanceUID"] .tag-value')
    expect(study_uid).to_have_text(re.compile(r"^2\.25\.\d+$"))
    expect(clinician.locator('#tags-body tr[data-keyword="PatientID"]')).to_have_count(1)
    expect(clinician.locator("#tags-note")).to_contain_text("shown")
    modality = '#tags-body tr[data-keyword="Modality"] .tag-value'
    expect(clinician.locator(modality)).to_have_text("CR")
    docs_shot(clinician, docs_images, "tag-browser", ".side")

    hidden = researcher.locator('#tags-body tr[data-phi="true"] .tag-value')
    assert hidden.count() > 3
    assert set(hidden.all_inner_texts()) == {"(withheld: identifying)"}
    expect(researcher.locator("#tags-note")).to_contain_text("withheld")
    expect(researcher.locator(modality)).to_have_text("CR")
    expect(
        researcher.locator('#tags-body tr[data-keyword="StudyInstanceUID"] .tag-value')
    ).to_have_text("(withheld: identifying)")
    assert study_uid.inner_text() not in researcher.content()
    researcher.fill("#tags-filter", "PatientIdentityRemoved")
    expect(researcher.locator("#tags-body tr")).to_have_count(1)
    expect(researcher.locator("#tags-body tr .tag-value")).to_have_text("YES")


@pytest.fixture
def browser_page_pair(browser, service):  # type: ignore[no-untyped-def]
    """Two pages in separate contexts (two signed-in users at once)."""
    contexts = [
        browser.new_context(viewport={"width": 1280, "height": 800}, base_url=service.url)
        for _ in range(2)
    ]
    pages = []
    for context in contexts:
        context.set_default_timeout(60_000)
        pages.append(context.new_page())
    yield tuple(pages)
    for context in contexts:
        context.close()


def test_worklist_summary_survives_a_reload_and_sorts_by_result(
    page: Page, shared_data: Path, screenshots: Path, docs_images: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    page.select_option("#auto-task", "fracture")
    page.set_input_files("#file-input", str(fracture_image(shared_data)))
    fracture_row = page.locator(".study", has_text="fracture")
    expect(fracture_row.locator(".study-ai")).to_have_text(
        re.compile(r"fracture \d+ %"), timeout=180_000
    )
    summary = fracture_row.locator(".study-ai").inner_text()
    severity = fracture_row.get_attribute("data-severity")
    assert severity in ("positive", "negative")
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    row = page.locator(".study", has_text=summary)
    expect(row.locator(".study-ai")).to_have_text(summary)  # from the service, not the page
    expect(row.locator(".study-title")).not_to_have_text(re.compile(r"chest AI|fracture AI"))
    # Sort and filter by the AI result.
    page.select_option("#worklist-filter", severity or "positive")
    assert page.locator(".study").count() >= 1
    for other in page.locator(".study").all():
        assert other.get_attribute("data-severity") == severity
    page.select_option("#worklist-filter", "none")
    expect(page.locator(".study", has_text=summary)).to_have_count(0)
    page.select_option("#worklist-filter", "all")
    page.select_option("#worklist-sort", "severity")
    ranks = {"positive": 2, "negative": 1, "none": 0}
    rows = page.locator(".study").all()
    order = [ranks[s.get_attribute("data-severity") or "none"] for s in rows]
    assert order == sorted(order, reverse=True)
    page.screenshot(path=str(screenshots / "22-worklist-triage.png"))
    docs_shot(page, docs_images, "worklist", ".worklist")


def test_the_same_file_twice_offers_the_study_already_there(
    page: Page, shared_data: Path, screenshots: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    path = shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm"
    open_file(page, path)
    before = page.locator(".study").count()
    page.locator(".study").first.click()
    page.set_input_files("#file-input", str(path))
    duplicate = page.locator(".upload.duplicate")
    expect(duplicate).to_be_visible()
    expect(duplicate).to_contain_text("already in the worklist")
    shot_name = "23-duplicate-upload"
    page.screenshot(path=str(screenshots / f"{shot_name}.png"))
    duplicate.get_by_role("button", name="Open it").click()
    expect(page.locator(".study[aria-selected=true]")).to_have_count(1)
    assert page.locator(".study").count() == before
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator(".study")).to_have_count(before)


def test_monochrome1_shows_the_files_window_and_dense_is_bright(
    page: Page, shared_data: Path, screenshots: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    open_file(page, shared_data / MONOCHROME1_CHEST)
    wait_canvas(page, "window", "15000/30000")
    expect(page.locator("#overlay-bl")).to_contain_text("W 30000  L 15000")
    expect(page.locator("#overlay-tl")).to_contain_text("CR · CHEST PA")
    expect(page.locator("#overlay-tr")).to_contain_text("MONOCHROME1")
    expect(page.locator("#overlay-bl")).not_to_contain_text("INVERTED")
    centre, border = page.evaluate(CENTRE_AND_BORDER)
    assert centre > border + 20, f"mediastinum {centre:.0f} vs air {border:.0f}: shown inverted"
    page.screenshot(path=str(screenshots / "24-monochrome1.png"))


def test_presets_have_readable_labels_and_tissue_windows(
    page: Page, shared_data: Path, tmp_path: Path
) -> None:
    sign_in(page, RADIOLOGIST)
    open_file(page, shared_data / CT_SLICE)
    options = page.locator("#preset-select option").all_inner_texts()
    assert options[:2] == ["1 · WINDOW1", "2 · WINDOW2"], options
    assert not any("[" in o for o in options)
    assert any("Lung (CT)" in o for o in options) and any("Bone (CT)" in o for o in options)

    plain = tmp_path / "hand.png"
    ramp = np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1))
    cv2.imwrite(str(plain), ramp)
    page.locator(".study").first.click()  # leave the CT open study
    open_file(page, plain)
    wait_canvas(page, "level", "300x200")
    options = page.locator("#preset-select option").all_inner_texts()
    assert options[0].startswith("1 · Auto"), options
    assert any("Lung" in o for o in options) and any("Bone" in o for o in options)


def test_a_large_image_comes_as_a_level_then_a_full_detail_tile(page: Page, tmp_path: Path) -> None:
    big = tmp_path / "large.png"
    image = np.zeros((3000, 5000), np.uint8)
    cv2.putText(image, "INSIGHT", (400, 1800), cv2.FONT_HERSHEY_SIMPLEX, 30, 255, 60)
    cv2.imwrite(str(big), image)
    sign_in(page, RADIOLOGIST)
    open_file(page, big)
    wait_canvas(page, "level", "2048x1229")
    assert canvas(page, "full-width") == "5000"
    assert canvas(page, "tile") == ""
    page.locator("#canvas").focus()
    for _ in range(8):
        page.keyboard.press("+")
    page.wait_for_function("() => document.querySelector('#canvas').dataset.tile !== ''")
    x, y, w, h = (int(v) for v in canvas(page, "tile").split(","))
    assert 0 < w <= 4096 and 0 < h <= 4096 and x >= 0 and y >= 0

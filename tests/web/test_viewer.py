"""The viewer as a clinician uses it: real service, real models, real Chromium.

Every step leaves a screenshot under ``$INSIGHTRAY_WEB_SCREENSHOTS`` to look at.
"""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from playwright.sync_api import Page, expect

from insightray.imaging import Window
from insightray.imaging.windowing import apply_window
from tests.web.conftest import NEWCOMER, READER, RecordedPage, Service, foreign_requests

pytestmark = pytest.mark.browser

CHEST = "dicom/cr_chest_pa_jpeg_baseline.dcm"

#: Counts strongly coloured canvas pixels: a grayscale radiograph has none, so they are
#: the AI overlays (boxes, labels, heatmap).
COLOURED_PIXELS = """() => {
  const canvas = document.querySelector("#canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 90) count++;
  }
  return count;
}"""

#: The fraction of the image's on-screen area that is tinted at all (any colour, not grey).
TINTED_FRACTION = """() => {
  const canvas = document.querySelector("#canvas");
  const [ox, oy] = canvas.dataset.offset.split(",").map(Number);
  const scale = Number(canvas.dataset.scale), dpr = window.devicePixelRatio || 1;
  const size = canvas.dataset.level.split("x").map(Number);
  const full = [Number(canvas.dataset.fullWidth || size[0]),
                Number(canvas.dataset.fullHeight || size[1])];
  const x0 = Math.max(0, Math.round(ox * dpr)), y0 = Math.max(0, Math.round(oy * dpr));
  const w = Math.min(canvas.width - x0, Math.round(full[0] * scale * dpr));
  const h = Math.min(canvas.height - y0, Math.round(full[1] * scale * dpr));
  const data = canvas.getContext("2d").getImageData(x0, y0, w, h).data;
  let tinted = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    if (Math.max(r, g, b) - Math.min(r, g, b) > 12) tinted++;
  }
  return tinted / (w * h);
}"""

BACKGROUND = "(element) => getComputedStyle(element).backgroundColor"

DROP_FILE = """([selector, name, type, payload]) => {
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(selector);
  for (const kind of ["dragenter", "dragover", "drop"]) {
    const init = { bubbles: true, cancelable: true, dataTransfer: transfer };
    target.dispatchEvent(new DragEvent(kind, init));
  }
}"""


def shot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"))


def sign_in(page: Page, user: tuple[str, str] = READER) -> None:
    page.goto("/")
    page.fill("#signin-username", user[0])
    page.fill("#signin-password", user[1])
    page.click("#signin-submit")
    expect(page.locator("#app")).to_be_visible()


def canvas(page: Page, name: str) -> str:
    return page.locator("#canvas").get_attribute(f"data-{name}") or ""


def wait_canvas(page: Page, name: str, value: str) -> None:
    page.wait_for_function(
        "([name, value]) => document.querySelector('#canvas').dataset[name] === value",
        arg=[name, value],
    )


def coloured(page: Page) -> int:
    return int(page.evaluate(COLOURED_PIXELS))


def drop_file(page: Page, path: Path, content_type: str) -> None:
    payload = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(DROP_FILE, ["#dropzone", path.name, content_type, payload])


def fracture_image(shared_data: Path) -> Path:
    """The first fractured image of the dataset's test split."""
    root = shared_data / "fracture" / "bone_fracture_roboflow"
    with (root / "images.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    chosen = next(r for r in rows if r["fractured"] == "1" and r["roboflow_split"] == "test")
    return root / chosen["image"]


def test_sign_in_errors_and_empty_states(page: Page, screenshots: Path) -> None:
    page.goto("/")
    expect(page.locator("#signin")).to_be_visible()
    shot(page, screenshots, "01-sign-in")
    page.fill("#signin-username", NEWCOMER[0])
    page.fill("#signin-password", "not-the-password")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("Wrong username or password.")
    shot(page, screenshots, "02-sign-in-wrong-password")

    sign_in(page, NEWCOMER)
    expect(page.locator("#user-chip")).to_contain_text("newcomer")
    expect(page.locator("#worklist-empty")).to_be_visible()
    expect(page.locator("#stage-empty")).to_be_visible()
    expect(page.locator("#findings-empty")).to_be_visible()
    expect(page.locator("#run-cxr")).to_be_disabled()
    shot(page, screenshots, "03-empty-worklist")

    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("Window/level")
    shot(page, screenshots, "04-keyboard-help")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()

    page.click("#signout-button")
    expect(page.locator("#signin")).to_be_visible()


def test_chest_film_with_boxes_threshold_and_window(
    recorded: RecordedPage, service: Service, shared_data: Path, screenshots: Path
) -> None:
    page = recorded.page
    sign_in(page)
    expect(page.locator("#auto-task")).to_have_value("cxr")
    drop_file(page, shared_data / CHEST, "application/dicom")
    expect(page.locator(".upload").first).to_be_visible()  # the upload row with its progress
    expect(page.locator("#detection-card")).to_be_visible(timeout=120_000)
    expect(page.locator(".study[aria-selected=true] .status")).to_have_text("analysed")
    expect(page.locator("#detection-card .model-chip")).to_have_text(re.compile(r".+ v\d+\.\d+"))
    page.wait_for_function("() => document.querySelector('#canvas').dataset.window !== ''")
    shot(page, screenshots, "05-chest-analysed")

    # The slider starts at the model's operating point; lower it until every candidate shows.
    start = float(page.locator("#threshold").input_value())
    hint = re.search(r"of (\d+) candidate", page.locator("#threshold-hint").inner_text())
    assert hint, "the detection card says how many candidates there are"
    total = int(hint.group(1))
    assert total >= 1, "the detector returned no candidate for the chest film"
    page.locator("#threshold").fill("0")
    expect(page.locator("#threshold-value")).to_have_text("0.00")
    wait_canvas(page, "boxes", str(total))
    expect(page.locator(".finding")).to_have_count(total)
    boxes_drawn = coloured(page)
    assert boxes_drawn > 200, "boxes are listed but not drawn on the canvas"
    shot(page, screenshots, "06-chest-threshold-lowered")

    # Hovering a finding highlights its box.
    first = page.locator(".finding").first
    first.hover()
    wait_canvas(page, "highlight", first.get_attribute("data-key") or "")
    expect(first).to_have_class(re.compile("active"))
    shot(page, screenshots, "07-chest-finding-hovered")

    # Per-class toggle hides that class's boxes; the threshold above every score hides all.
    toggle = page.locator(".class-toggle").first
    label = toggle.get_attribute("data-label")
    of_class = page.locator(f'.finding[data-label="{label}"]').count()
    assert of_class >= 1
    toggle.click()
    wait_canvas(page, "boxes", str(total - of_class))
    toggle.click()
    wait_canvas(page, "boxes", str(total))
    page.locator("#threshold").fill("1")
    wait_canvas(page, "boxes", "0")
    assert coloured(page) < boxes_drawn // 10
    page.locator("#canvas").focus()
    page.keyboard.press("[")
    page.keyboard.press("[")
    expect(page.locator("#threshold-value")).to_have_text("0.90")
    page.locator("#threshold").fill(str(start))

    # Window/level by mouse drag, invert, zoom and reset.
    before = canvas(page, "window")
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=6)
    page.mouse.up()
    page.wait_for_function(
        "(w) => document.querySelector('#canvas').dataset.window !== w", arg=before
    )
    page.keyboard.press("i")
    wait_canvas(page, "inverted", "true")
    scale = float(canvas(page, "scale"))
    page.keyboard.press("+")
    page.wait_for_function(
        "(s) => Number(document.querySelector('#canvas').dataset.scale) > s", arg=scale
    )
    expect(page.locator("#overlay-bl")).to_contain_text("INVERTED")
    page.keyboard.press("p")  # the pan tool: a drag moves the image, not the window
    offset, window = canvas(page, "offset"), canvas(page, "window")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 80, y - 40, steps=4)
    page.mouse.up()
    page.wait_for_function(
        "(o) => document.querySelector('#canvas').dataset.offset !== o", arg=offset
    )
    assert canvas(page, "window") == window
    page.keyboard.press("w")
    shot(page, screenshots, "08-chest-window-inverted-zoomed")
    page.keyboard.press("r")
    wait_canvas(page, "window", before)
    wait_canvas(page, "inverted", "false")

    # No identifiers in the URL or title; the de-identified name never reaches the page.
    patient = str(pydicom.dcmread(shared_data / CHEST, stop_before_pixels=True).PatientName)
    assert page.url == f"{service.url}/"
    assert page.title() == "Insight Ray"
    assert patient not in page.content()
    assert not foreign_requests(recorded.requests, service.url)


def test_fracture_heatmap_toggle(page: Page, shared_data: Path, screenshots: Path) -> None:
    sign_in(page)
    page.select_option("#auto-task", "fracture")
    page.set_input_files("#file-input", str(fracture_image(shared_data)))
    answered = page.locator("#fracture-card:not([hidden]), #findings-error:not([hidden])")
    expect(answered.first).to_be_visible(timeout=180_000)
    error = page.locator("#findings-error")
    assert error.is_hidden(), f"the fracture analysis failed: {error.inner_text()}"
    expect(page.locator("#fracture-probability")).to_have_text(re.compile(r"\d+\.\d%"))
    expect(page.locator("#fracture-threshold")).to_contain_text("model card")
    expect(page.locator("#fracture-card .model-chip")).to_have_text(re.compile(r".+ v\d+"))
    wait_canvas(page, "heatmap", "off")
    plain = coloured(page)
    shot(page, screenshots, "09-fracture-result")
    # The bar has the colour of the decision: red only at or above the operating point.
    verdict = page.locator("#fracture-verdict").inner_text()
    red, green, _ = (
        int(v) for v in re.findall(r"\d+", page.locator("#prob-fill").evaluate(BACKGROUND))[:3]
    )
    if verdict == "No fracture suspected":
        assert green > red, f"a negative result drawn in rgb({red}, {green}, ...)"
    else:
        assert red > green, f"a positive result drawn in rgb({red}, {green}, ...)"

    page.check("#heatmap-toggle")
    wait_canvas(page, "heatmap", "on")
    page.wait_for_function(f"() => ({COLOURED_PIXELS})() > {plain + 1000}")
    half = coloured(page)
    tinted = float(page.evaluate(TINTED_FRACTION))
    assert tinted < 0.5, f"the heatmap tints {tinted:.0%} of the film by default"
    shot(page, screenshots, "10-fracture-heatmap")
    page.locator("#heatmap-opacity").fill("0.9")
    expect(page.locator("#heatmap-opacity-value")).to_have_text("90%")
    page.wait_for_function(f"() => ({COLOURED_PIXELS})() !== {half}")
    shot(page, screenshots, "11-fracture-heatmap-opaque")
    page.locator("#canvas").focus()
    page.keyboard.press("h")
    wait_canvas(page, "heatmap", "off")
    expect(page.locator("#heatmap-toggle")).not_to_be_checked()


#: A TBX11K film the detector boxes (no other browser test uploads it).
TB_FILM = "cxr/tbx11k/images/tb0005.jpg"


def test_detector_heatmap_toggle_and_source(
    page: Page, shared_data: Path, screenshots: Path
) -> None:
    sign_in(page)
    page.select_option("#auto-task", "cxr")
    page.set_input_files("#file-input", str(shared_data / TB_FILM))
    answered = page.locator("#detection-card:not([hidden]), #findings-error:not([hidden])")
    expect(answered.first).to_be_visible(timeout=180_000)
    error = page.locator("#findings-error")
    assert error.is_hidden(), f"the detection failed: {error.inner_text()}"
    expect(page.locator("#heatmap-card")).to_be_visible()
    expect(page.locator("#heatmap-method")).to_contain_text("Detector: EigenCAM")
    expect(page.locator("#heatmap-source")).to_be_hidden()  # one result, nothing to choose
    wait_canvas(page, "heatmap", "off")
    page.wait_for_function("() => document.querySelector('#canvas').dataset.window !== ''")
    plain = coloured(page)

    page.click('[data-action="heatmap"]')
    wait_canvas(page, "heatmap", "on")
    expect(page.locator("#heatmap-toggle")).to_be_checked()
    expect(page.locator('[data-action="heatmap"]')).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(f"() => ({COLOURED_PIXELS})() > {plain + 1000}")
    tinted = float(page.evaluate(TINTED_FRACTION))
    assert tinted < 0.5, f"the EigenCAM tints {tinted:.0%} of the film by default"
    shot(page, screenshots, "12-detector-eigencam")
    half = coloured(page)
    page.locator("#heatmap-opacity").fill("0.9")
    page.wait_for_function(f"() => ({COLOURED_PIXELS})() !== {half}")

    # A fracture result too: its Grad-CAM becomes the one shown, the detector's one pick away.
    page.click("#run-fracture")
    expect(page.locator("#fracture-card")).to_be_visible(timeout=180_000)
    expect(page.locator("#heatmap-source")).to_be_visible()
    expect(page.locator("#heatmap-source")).to_have_value("fracture")
    expect(page.locator("#heatmap-method")).to_contain_text("Fracture: Grad-CAM")
    wait_canvas(page, "heatmap", "off")
    page.check("#heatmap-toggle")
    wait_canvas(page, "heatmap", "on")
    page.select_option("#heatmap-source", "cxr")
    expect(page.locator("#heatmap-method")).to_contain_text("Detector: EigenCAM")
    wait_canvas(page, "heatmap", "on")  # still shown, now the detector's
    page.locator("#canvas").focus()
    page.keyboard.press("h")
    wait_canvas(page, "heatmap", "off")
    expect(page.locator("#heatmap-toggle")).not_to_be_checked()


def test_report_negation_and_uncertainty(page: Page, screenshots: Path) -> None:
    sign_in(page)
    page.click('[data-tab="report"]')
    page.fill("#report-text", "No evidence of pneumothorax. Possible right lower lobe pneumonia.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#report-result")).to_be_visible()
    negated = page.locator("#report-highlighted mark[data-negated=true]")
    expect(negated).to_have_count(1)
    expect(negated).to_have_text("pneumothorax")
    expect(negated).to_have_class(re.compile("negated"))
    uncertain = page.locator("#report-highlighted mark[data-uncertain=true]")
    expect(uncertain).to_contain_text("pneumonia")
    expect(uncertain).to_have_class(re.compile("uncertain"))
    expect(page.locator("#report-diseases li").first).to_contain_text("%")
    expect(page.locator("#report-models")).to_contain_text(re.compile(r"v\d+"))
    shot(page, screenshots, "12-report-entities")


def test_report_tab_shades_the_words_behind_the_disease(page: Page, screenshots: Path) -> None:
    sign_in(page)
    page.click('[data-tab="report"]')
    page.fill("#report-text", "I have a high fever, chills and I keep sweating at night.")
    page.click("#report-analyse")
    expect(page.locator("#report-result")).to_be_visible(timeout=60_000)
    expect(page.locator("#report-explanation")).to_be_hidden()  # only when asked
    for method, name in (("integrated-gradients", "integrated gradients"),
                         ("attention-rollout", "attention rollout")):  # fmt: skip
        page.select_option("#report-explain", method)
        page.click("#report-analyse")  # integrated gradients: 64 passes, slow on a loaded CPU
        expect(page.locator("#report-explanation-title")).to_contain_text(name, timeout=60_000)
        words = page.locator("#report-words .word-weight")
        expect(words.first).to_be_visible()
        assert words.count() >= 8
        weights = [float(w) for w in words.evaluate_all("s => s.map(e => e.dataset.weight)")]
        assert max(weights) > 0 and all(-1 <= w <= 1 for w in weights)
        assert "fever" in page.locator("#report-words").inner_text()
    shot(page, screenshots, "13-report-word-weights")


def test_assistant_cites_and_escalates(page: Page, screenshots: Path) -> None:
    sign_in(page)
    page.keyboard.press("q")
    expect(page.locator("#chat-input")).to_be_focused()
    page.keyboard.type("What causes gout?")
    page.keyboard.press("Enter")
    citation = page.locator(".msg-bot .citations a").first
    expect(citation).to_be_visible(timeout=60_000)
    expect(citation).to_have_attribute("href", re.compile(r"^https?://.+gout"))
    expect(citation).to_have_attribute("target", "_blank")
    expect(page.locator(".msg-bot sup a").first).to_have_text("[1]")
    shot(page, screenshots, "13-assistant-citation")

    page.fill("#chat-input", "I have crushing chest pain and can't breathe")
    page.keyboard.press("Enter")
    banner = page.locator(".emergency")
    expect(banner).to_be_visible(timeout=60_000)
    expect(banner).to_contain_text("emergency")
    shot(page, screenshots, "14-assistant-emergency")

    page.fill("#chat-input", "I have been vomiting for 24 hours and cannot keep water down")
    page.keyboard.press("Enter")
    urgent = page.locator(".msg-bot[data-triage=urgent]")
    expect(urgent).to_be_visible(timeout=60_000)
    expect(urgent.locator(".urgent")).to_contain_text("What to do now")
    expect(urgent.locator(".triage")).to_contain_text("urgent, be seen today")
    shot(page, screenshots, "15-assistant-urgent")


def test_page_talks_only_to_the_service(
    recorded: RecordedPage, service: Service, shared_data: Path
) -> None:
    page = recorded.page
    response = page.goto("/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    sign_in(page, NEWCOMER)  # the reader has this file already: it would be a duplicate
    page.select_option("#auto-task", "")
    page.set_input_files("#file-input", str(shared_data / CHEST))
    expect(page.locator(".study").first).to_be_visible()
    expect(page.locator("#stage-loading")).to_be_hidden()
    for tab in ("report", "assistant", "findings"):
        page.click(f'[data-tab="{tab}"]')
    page.keyboard.press("?")
    page.keyboard.press("Escape")
    page.wait_for_load_state("networkidle")
    paths = {u.removeprefix(service.url) for u in recorded.requests}
    for asset in ("/", "/static/app.js", "/static/styles.css", "/v1/auth/token", "/v1/studies"):
        assert asset in paths, f"{asset} was not requested: {sorted(paths)}"
    assert any(p.endswith("/pixels") for p in paths)
    assert foreign_requests(recorded.requests, service.url) == []


def test_layout_fits_1280x800(page: Page) -> None:
    sign_in(page)
    sizes = page.evaluate(
        """() => ({
          scrollWidth: document.documentElement.scrollWidth,
          scrollHeight: document.documentElement.scrollHeight,
          canvas: document.querySelector('#canvas').getBoundingClientRect().toJSON(),
          side: document.querySelector('.side').getBoundingClientRect().toJSON(),
        })"""
    )
    assert sizes["scrollWidth"] <= 1280 and sizes["scrollHeight"] <= 800
    assert sizes["canvas"]["width"] >= 600 and sizes["canvas"]["height"] >= 650
    assert sizes["side"]["right"] <= 1280


def test_bad_upload_shows_the_service_error(page: Page, tmp_path: Path, screenshots: Path) -> None:
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is not an image at all\n" * 20)
    sign_in(page)
    page.set_input_files("#file-input", str(junk))
    failed = page.locator(".upload.failed")
    expect(failed).to_be_visible()
    message = failed.locator(".upload-error")
    expect(message).to_contain_text("not a DICOM, PNG, JPEG or TIFF file")
    assert "/" not in message.inner_text(), "the error names a server path"
    shot(page, screenshots, "15-upload-rejected")
    failed.get_by_role("button", name="Dismiss").click()
    expect(failed).to_have_count(0)


@pytest.mark.parametrize(
    "center, width", [(40.0, 80.0), (2047.5, 4096.0), (128.0, 1.0), (-600, 1500)]
)
def test_browser_window_level_matches_the_dicom_voi_function(
    page: Page, center: float, width: float
) -> None:
    values = np.linspace(center - width, center + width, 41, dtype=np.float32)
    page.goto("/")
    in_browser = page.evaluate(
        """async ([values, center, width]) => {
          const { windowValue } = await import("/static/viewer.js");
          return values.map((v) => windowValue(v, center, width));
        }""",
        [values.tolist(), center, width],
    )
    expected = apply_window(values, Window(center, width)) * 255.0
    np.testing.assert_allclose(in_browser, expected, atol=1e-3)

"""The report panel with a study open: a pasted report's observations, the discrepancies with
the real detector's findings both ways, and the AI-generated draft. Real service, Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.test_viewer import drop_file, shot, sign_in

pytestmark = pytest.mark.browser

#: A TBX11K film the detector boxes (no other browser test uploads it).
TB_FILM = "cxr/tbx11k/images/tb0020.jpg"
CLEAR = "FINDINGS: Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax."


def test_pasted_report_is_compared_with_the_ai_both_ways(
    page: Page, shared_data: Path, screenshots: Path
) -> None:
    sign_in(page)
    page.click('[data-tab="report"]')
    expect(page.locator("#report-compare")).to_be_disabled()  # no study open
    expect(page.locator("#report-study-hint")).to_contain_text("Open a study")
    drop_file(page, shared_data / TB_FILM, "image/jpeg")
    expect(page.locator("#detection-card")).to_be_visible(timeout=120_000)
    page.click('[data-tab="report"]')
    expect(page.locator("#report-compare")).to_be_enabled()

    # The report says the lungs are clear: every AI box is flagged against it.
    page.fill("#report-text", CLEAR)
    page.click("#report-compare")
    flagged = page.locator('#report-discrepancies li[data-kind="model_only"]')
    expect(flagged.first).to_be_visible()
    expect(flagged.first).to_have_attribute("data-status", "negative")
    expect(flagged.first).to_contain_text("says the lungs are clear")
    expect(page.locator('#report-observations li[data-label="Lung Opacity"]')).to_have_attribute(
        "data-status", "negative"
    )
    expect(page.locator("#report-cannot-see")).to_contain_text("Pleural Effusion")
    expect(page.locator("#report-ai-model")).to_contain_text(re.compile(r"cxr-tbx11k-yolov5s v\d"))
    shot(page, screenshots, "20-report-vs-ai-clear")

    # The AI draft, marked as such, edited by the reader: agreement on the lungs, and the
    # effusion the reader adds is something the model cannot see.
    page.click("#report-draft")
    expect(page.locator("#report-draft-banner")).to_be_visible()
    expect(page.locator("#report-draft-banner")).to_contain_text("AI-generated draft")
    expect(page.locator("#report-text")).to_have_value(re.compile(r"^AI-GENERATED DRAFT \("))
    draft = page.locator("#report-text").input_value()
    page.fill("#report-text", draft + "\nSmall right pleural effusion.")
    page.click("#report-compare")
    expect(page.locator('#report-discrepancies li[data-kind="not_visible"]')).to_have_count(1)
    expect(page.locator('#report-discrepancies li[data-kind="model_only"]')).to_have_count(0)
    effusion = page.locator('#report-observations li[data-label="Pleural Effusion"]')
    expect(effusion).to_have_attribute("data-status", "positive")
    expect(effusion).to_contain_text("small right")
    shot(page, screenshots, "21-report-vs-ai-draft-edited")

    # The report is kept with the study: after a reload, opening the study brings it back.
    saved = page.locator("#report-text").input_value()
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    page.locator(".study").first.click()
    page.click('[data-tab="report"]')
    expect(page.locator("#report-text")).to_have_value(saved)
    expect(page.locator('#report-discrepancies li[data-kind="not_visible"]')).to_have_count(1)

"""The feedback round trip in Chromium: a radiologist accepts and rejects AI boxes and the
fracture label in the viewer, and the agreement on ``/metrics`` (read as Prometheus would,
with an auditor's token) changes accordingly; the verdicts come back after a reload."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import MONITOR, SECOND_READER, Service
from tests.web.test_viewer import CHEST, drop_file, shot, sign_in


def _metrics(service: Service) -> dict[tuple[str, str, str, str], float]:
    """``(series, model, version, kind)`` -> value of the feedback series on ``/metrics``."""
    token = httpx.post(
        f"{service.url}/v1/auth/token", data={"username": MONITOR[0], "password": MONITOR[1]}
    ).json()["access_token"]
    response = httpx.get(f"{service.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return {
        (s.name, s.labels["model"], s.labels["version"], s.labels.get("kind", "")): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith(("insightray_feedback", "insightray_retraining"))
    }


def _model(page: Page, card: str) -> tuple[str, str]:
    name, _, version = page.locator(f"{card} .model-chip").inner_text().rpartition(" v")
    return name, version


def test_accept_and_reject_in_the_viewer_change_agreement_on_metrics(
    page: Page, service: Service, shared_data: Path, screenshots: Path
) -> None:
    sign_in(page, SECOND_READER)
    drop_file(page, shared_data / CHEST, "application/dicom")
    expect(page.locator("#detection-card")).to_be_visible(timeout=120_000)
    name, version = _model(page, "#detection-card")
    before = _metrics(service)
    judged = before.get(("insightray_feedback_judged", name, version, "box"), 0.0)
    accepted = before.get(("insightray_feedback_accepted", name, version, "box"), 0.0)

    page.locator("#threshold").fill("0")  # every candidate, so that there are two to judge
    findings = page.locator(".finding")
    expect(findings.nth(1)).to_be_visible()
    first, second = findings.nth(0), findings.nth(1)
    first.locator(".verdict-button.accept").click()
    expect(first.locator(".verdict-button.accept")).to_have_attribute("aria-pressed", "true")
    second.locator(".verdict-button.reject").click()
    expect(second.locator(".verdict-button.reject")).to_have_attribute("aria-pressed", "true")
    expect(second.locator(".verdict-button.accept")).to_have_attribute("aria-pressed", "false")
    shot(page, screenshots, "30-feedback-judged")

    after = _metrics(service)
    key = (name, version)
    assert after[("insightray_feedback_judged", *key, "box")] == judged + 2
    assert after[("insightray_feedback_accepted", *key, "box")] == accepted + 1
    agreement = after[("insightray_feedback_agreement", *key, "")]
    assert agreement == (accepted + 1) / (judged + 2)

    second.locator(".verdict-button.accept").click()  # a second look: the reader agrees
    expect(second.locator(".verdict-button.accept")).to_have_attribute("aria-pressed", "true")
    changed = _metrics(service)
    assert changed[("insightray_feedback_judged", *key, "box")] == judged + 2  # replaced
    assert changed[("insightray_feedback_agreement", *key, "")] > agreement
    assert changed[("insightray_feedback_precision", *key, "")] == (accepted + 2) / (judged + 2)

    page.click("#run-fracture")  # the fracture label of the same film: the reader disagrees
    expect(page.locator("#fracture-card")).to_be_visible(timeout=120_000)
    fracture = _model(page, "#fracture-card")
    page.locator("#fracture-feedback [data-verdict=reject]").click()
    expect(page.locator("#fracture-feedback")).to_have_attribute("data-verdict", "reject")
    labels = _metrics(service)
    assert labels[("insightray_feedback_judged", *fracture, "label")] >= 1
    assert labels[("insightray_feedback_agreement", *fracture, "")] < 1

    page.reload()  # the verdicts are the service's, not the page's
    page.locator(".study").first.click()
    expect(page.locator("#detection-card")).to_be_visible()
    page.locator("#threshold").fill("0")
    pressed = page.locator('.finding .verdict-button.accept[aria-pressed="true"]')
    expect(pressed).to_have_count(2)
    expect(page.locator("#fracture-feedback")).to_have_attribute("data-verdict", "reject")

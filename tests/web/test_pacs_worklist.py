"""The viewer opens a study from a real Orthanc and draws the boxes of the SR filed beside it.

Its own service (an admin, ``INSIGHTRAY_PACS_DICOMWEB_URL`` set to a real Orthanc holding the
chest radiograph and the SR Insight Ray stored back for it), in Chromium.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.pacs.orthanc import Orthanc, orthanc_installed, run_orthanc
from tests.web.conftest import Service, _run_all, serve
from tests.web.test_viewer import canvas, sign_in, wait_canvas

pytest.importorskip("pynetdicom")
pytestmark = pytest.mark.browser

ADMIN = ("pacsadmin", "pacs-admin-passphrase-19")
CLINICIAN = ("ward", "ward-passphrase-77")


@pytest.fixture(scope="module")
def orthanc_with_sr(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Orthanc, int]]:
    """Orthanc holding the chest CR and the SR of its detection (with the original UIDs)."""
    from insightray.engine import load_predictor
    from insightray.imaging.dicom import read_dataset
    from insightray.pacs.dicomweb import DicomWeb
    from insightray.pacs.sr import build_sr

    if not orthanc_installed():
        pytest.skip("Orthanc not installed: apt-get install orthanc orthanc-dicomweb (make test)")
    chest = shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm"
    predictor = load_predictor(task="detection")
    result = predictor.predict_paths([str(chest)])[0]
    sr = build_sr(read_dataset(chest, header_only=True), detection=(result, predictor.card))
    with run_orthanc(tmp_path_factory.mktemp("orthanc-web")) as server:
        DicomWeb(server.dicomweb_url).store([read_dataset(chest), sr])
        yield server, len(result.detections)


@pytest.fixture(scope="module")
def pacs_service(
    orthanc_with_sr: tuple[Orthanc, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    orthanc, _ = orthanc_with_sr
    home = tmp_path_factory.mktemp("web-pacs-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTRAY_")}
    env |= {"INSIGHTRAY_HOME": str(home), "INSIGHTRAY_PACS_DICOMWEB_URL": orthanc.dicomweb_url}
    env["INSIGHTRAY_DEBUG"] = "1"  # a failing set-up command shows its traceback
    if "INSIGHTRAY_DATA" in os.environ:
        env["INSIGHTRAY_DATA"] = os.environ["INSIGHTRAY_DATA"]
    _run_all(
        [
            (["users", "create", name, "--role", role, "--password-stdin"], password)
            for (name, password), role in ((ADMIN, "admin"), (CLINICIAN, "clinician"))
        ],
        env,
    )
    yield from serve(home, env)


@pytest.fixture
def pacs_page(browser: Browser, pacs_service: Service) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=pacs_service.url
    )
    context.set_default_timeout(60_000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"
    assert not [url for url in requests if "9RG1" in url]  # search terms never in a URL


def test_an_admin_opens_a_pacs_study_and_sees_the_sr_boxes(
    pacs_page: Page, orthanc_with_sr: tuple[Orthanc, int], pacs_service: Service
) -> None:
    _, boxes = orthanc_with_sr
    sign_in(pacs_page, ADMIN)
    expect(pacs_page.locator("#pacs-search")).to_be_visible()
    pacs_page.fill("#pacs-patient", "9RG1")
    pacs_page.click("#pacs-search button[type=submit]")
    result = pacs_page.locator("#pacs-results .pacs-study")
    expect(result).to_have_count(1)
    expect(result).to_contain_text("9RG1")
    result.get_by_role("button", name="Open").click()
    expect(pacs_page.locator("#study-list .study")).to_have_count(1)
    wait_canvas(pacs_page, "boxes", str(boxes))
    expect(pacs_page.locator("#detection-card [data-role=model]")).to_have_text("SR from the PACS")
    assert canvas(pacs_page, "boxes") == str(boxes)
    # The study kept by the service is the de-identified copy.
    stored = b"".join(
        p.read_bytes() for p in (pacs_service.home / "store").rglob("*") if p.is_file()
    )
    assert b"9RG1" not in stored and b"CompressedSamples" not in stored


def test_the_pacs_search_is_not_offered_to_a_clinician(pacs_page: Page) -> None:
    sign_in(pacs_page, CLINICIAN)
    expect(pacs_page.locator("#study-list")).to_be_attached()
    pacs_page.wait_for_timeout(500)  # the admin check answers 403 for a clinician
    expect(pacs_page.locator("#pacs-search")).to_be_hidden()

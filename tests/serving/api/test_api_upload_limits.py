"""Uploads the service must refuse with a message that says what to do: a truncated DICOM
and an image over the configured pixel limit (refused from its header, before decoding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import DICOM_DIR, Api, start_api

CR_CHEST = DICOM_DIR / "cr_chest_RG1_UNCI.dcm"


@pytest.fixture
def small_image_api(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    """A service that takes images up to one megapixel."""
    yield from start_api(serve_settings, model_loader, password_hash, max_image_pixels=1_000_000)


def _post(api: Api, name: str, data: bytes) -> tuple[int, dict[str, str]]:
    response = api.client.post(
        "/v1/studies", files={"file": (name, data)}, headers=api.as_role("clinician")
    )
    return response.status_code, response.json().get("error", {})


def test_a_truncated_dicom_is_called_truncated(api: Api, shared_data: Path) -> None:
    status, error = _post(api, "cut.dcm", CR_CHEST.read_bytes()[:2000])
    assert status == 422 and error["type"] == "CorruptFileError", error
    assert "truncated" in error["message"] and "export it again" in error["message"]
    assert "no pixel data" not in error["message"]


def test_a_blank_81_megapixel_png_is_refused_before_decoding(api: Api) -> None:
    ok, png = cv2.imencode(".png", np.zeros((9000, 9000), np.uint8))
    assert ok and len(png) < api.services.settings.max_upload_bytes
    status, error = _post(api, "blank.png", png.tobytes())
    assert status == 413 and error["type"] == "ImageSizeError", error
    assert "9000 x 9000" in error["message"] and "INSIGHTRAY_MAX_IMAGE_PIXELS" in error["message"]
    assert api.client.get("/healthz").status_code == 200


def test_the_pixel_limit_is_a_setting(small_image_api: Api, shared_data: Path) -> None:
    status, error = _post(small_image_api, CR_CHEST.name, CR_CHEST.read_bytes())
    assert status == 413 and "1,000,000" in error["message"], error
    tensor = {"name": "image", "shape": [1001, 1000], "datatype": "UINT8", "data": [0] * 1_001_000}
    response = small_image_api.client.post(
        "/v2/models/cxr-tbx11k-yolov5s/infer",
        json={"inputs": [tensor]},
        headers=small_image_api.as_role("clinician"),
    )
    assert response.status_code == 413 and "1,000,000" in response.json()["error"]

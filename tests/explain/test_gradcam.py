"""Grad-CAM heatmaps: every registered classifier, original size, ROI crops, overlays."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from insightray.engine import load_predictor
from insightray.engine.classification import FracturePredictor
from insightray.errors import ConfigError
from insightray.explain import gradcam_heatmap, heatmap_rgba, overlay_heatmap, save_overlay
from insightray.explain.gradcam import target_layer
from insightray.models import Explain, list_models, load_card
from tests.engine.fracture_helpers import make_fracture_model, synthetic_radiograph

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list_models(task="classification"))
def test_gradcam_runs_for_every_registered_classifier(name: str, tmp_path: Path) -> None:
    predictor = load_predictor(
        str(make_fracture_model(tmp_path, name, size=64)), task="classification"
    )
    image = synthetic_radiograph(np.random.default_rng(0), True, shape=(90, 70))
    heat = gradcam_heatmap(predictor, image)
    assert heat.shape == (90, 70) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_heatmap_follows_the_letterbox_and_the_roi_crop(tmp_path: Path) -> None:
    card = make_fracture_model(
        tmp_path, "resnet50_radiograph", size=96, enhancement={"roi_crop": True, "roi_margin": 0}
    )
    predictor = load_predictor(str(card), task="classification")
    image = np.zeros((120, 200), np.float32)
    texture = synthetic_radiograph(np.random.default_rng(1), True, (60, 100))
    image[30:90, 50:150] = 0.5 + 0.4 * texture  # a bright region the ROI crop keeps
    top, left, bottom, right = predictor.prepare(image).crop
    np.testing.assert_allclose((top, left, bottom, right), (30, 50, 90, 150), atol=1)
    heat = gradcam_heatmap(predictor, image)
    assert heat.shape == (120, 200)
    assert heat[top:bottom, left:right].max() > 0
    outside = np.ones_like(heat, dtype=bool)
    outside[top:bottom, left:right] = False
    assert heat[outside].max() == 0.0  # nothing outside the region the model saw


class _BrightnessModel(torch.nn.Module):
    """Logit = mean of channel 0 of a 1x1 convolution that copies the image (channel 1 is the
    negated image and does not reach the logit), so Grad-CAM must follow the image's brightness."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.features.weight[:] = torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1)
            self.features.bias[:] = torch.tensor([3.0, 3.0])  # inputs are normalised

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[:, :1].mean(dim=(2, 3))


def test_heatmap_lands_on_the_original_pixels_that_drive_the_logit(tmp_path: Path) -> None:
    card = load_card(make_fracture_model(tmp_path, size=64))
    card = dataclasses.replace(card, explain=Explain("features"))
    predictor = FracturePredictor(_BrightnessModel(), card)
    image = np.zeros((60, 150), np.float32)  # letterboxed with padding above and below
    image[40:55, 110:140] = 1.0
    heat = gradcam_heatmap(predictor, image)
    assert heat.shape == (60, 150)
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert 40 <= peak[0] < 55 and 110 <= peak[1] < 140
    assert heat[40:55, 110:140].mean() > 0.8 and heat[:30, :90].mean() < 0.1


def test_overlays(tmp_path: Path) -> None:
    image = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    heat = np.zeros((20, 30), np.float32)
    heat[5:10, 5:10] = 1.0
    overlay = overlay_heatmap(image, heat)
    assert overlay.shape == (20, 30, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay[7, 7], overlay[15, 25])
    path = save_overlay(image, heat, tmp_path / "cam" / "x.png")
    assert cv2.imread(str(path)).shape == (20, 30, 3)
    rgba = heatmap_rgba(heat)
    assert rgba.shape == (20, 30, 4) and rgba[7, 7, 3] == 255 and rgba[0, 0, 3] == 0
    with pytest.raises(ConfigError):
        overlay_heatmap(image, heat[:10])


def test_bad_layer_names_are_clear_errors(tmp_path: Path) -> None:
    predictor = load_predictor(str(make_fracture_model(tmp_path)), task="classification")
    with pytest.raises(ConfigError, match="no such layer"):
        target_layer(predictor.model, "nope.3")
    with pytest.raises(ConfigError, match="names no Grad-CAM layer"):
        target_layer(predictor.model, "")

"""EigenCAM of the detector: original size, letterbox removed, PyTorch models only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightray.engine import load_predictor, write_model
from insightray.errors import ConfigError
from insightray.explain import eigencam_heatmap
from insightray.explain.eigencam import first_component
from insightray.models import ModelCard, Preprocessing, create_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny_detector(tmp_path: Path) -> Path:
    card = ModelCard(
        "yolov5n", "detection", "0.0.1", ("nodule",), (64, 64),
        preprocessing=Preprocessing(channels=1),
    )  # fmt: skip
    write_model(tmp_path, create_model("yolov5n", num_classes=1, in_channels=1), card)
    return tmp_path / "card.json"


def test_heatmap_has_the_original_size_and_ignores_the_padding(tiny_detector: Path) -> None:
    predictor = load_predictor(str(tiny_detector), task="detection", backend="torch")
    image = np.zeros((40, 160), np.float32)
    image[10:30, 120:150] = 1.0
    heat = eigencam_heatmap(predictor, image)
    assert heat.shape == (40, 160) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.std() > 0
    # The same image with the letterbox's padding drawn in: the map of the image is unchanged.
    padded = np.zeros((160, 160), np.float32)
    padded[60:100] = image
    again = eigencam_heatmap(predictor, padded)[60:100]
    assert np.corrcoef(heat.ravel(), again.ravel())[0, 1] > 0.9


def test_only_pytorch_detectors_can_be_explained(tiny_detector: Path) -> None:
    pytest.importorskip("onnxruntime")
    predictor = load_predictor(str(tiny_detector), task="detection", backend="onnx")
    with pytest.raises(ConfigError, match="PyTorch"):
        eigencam_heatmap(predictor, np.zeros((64, 64), np.float32))


def test_first_component_is_grad_cams_projection() -> None:
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    rng = np.random.default_rng(0)
    features = rng.normal(size=(32, 24, 20)).astype(np.float32)
    features[:8] += 3 * rng.normal(size=(1, 24, 20)).astype(np.float32)  # one strong direction
    ours, reference = first_component(features), get_2d_projection(features[None])[0]
    assert ours.shape == (24, 20)
    np.testing.assert_allclose(np.abs(ours), np.abs(reference), rtol=1e-3, atol=1e-3)

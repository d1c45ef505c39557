"""Weighted Boxes Fusion and test-time augmentation: known boxes in, known boxes out."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.engine import DetectionPredictor, load_predictor
from insightray.engine.fusion import fuse_boxes, hflip_boxes
from insightray.errors import ConfigError
from insightray.imaging import read_image
from insightray.models import ModelCard
from insightray.models.ensemble import Fusion, TestTimeAugmentation


def _set(boxes: list[list[float]], scores: list[float], classes: list[int]) -> tuple:
    return (
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
    )


def test_wbf_merges_overlapping_boxes_into_their_score_weighted_mean() -> None:
    a = _set([[10, 20, 50, 60]], [0.9], [0])
    b = _set([[14, 20, 54, 60]], [0.6], [0])
    boxes, scores, classes = fuse_boxes([a, b], [1.0, 1.0], (200, 100), Fusion())
    x1 = (10 * 0.9 + 14 * 0.6) / 1.5  # coordinates weighted by score
    assert boxes[0].tolist() == pytest.approx([x1, 20, x1 + 40, 60], abs=1e-3)
    assert scores.tolist() == pytest.approx([0.75])  # both models found it: the mean score
    assert classes.tolist() == [0]


def test_wbf_keeps_classes_and_distant_boxes_apart_and_discounts_lone_boxes() -> None:
    a = _set([[10, 10, 40, 40], [60, 60, 90, 90]], [0.8, 0.6], [0, 0])
    b = _set([[10, 10, 40, 40]], [0.8], [1])  # same place, other class
    boxes, scores, classes = fuse_boxes([a, b], [1.0, 1.0], (100, 100), Fusion())
    assert len(boxes) == 3
    by_class = sorted(zip(classes.tolist(), scores.tolist(), strict=True))
    # a box only one of two models found scores half (box_and_model_avg), never above 1
    assert [c for c, _ in by_class] == [0, 0, 1]
    assert [s for _, s in by_class] == pytest.approx([0.3, 0.4, 0.4])
    assert scores.max() <= 1.0


def test_weights_and_nms_and_empty_inputs() -> None:
    a = _set([[10, 10, 40, 40]], [0.9], [0])
    b = _set([[12, 10, 42, 40]], [0.5], [0])
    boxes, scores, _ = fuse_boxes([a, b], [3.0, 1.0], (100, 100), Fusion())
    x1 = (10 * 0.9 * 3 + 12 * 0.5) / (0.9 * 3 + 0.5)
    assert boxes[0, 0] == pytest.approx(x1, abs=1e-3)
    boxes, scores, _ = fuse_boxes([a, b], [1.0, 1.0], (100, 100), Fusion(method="nms"))
    assert boxes.tolist() == [[10, 10, 40, 40]] and scores.tolist() == pytest.approx([0.9])
    empty = _set([], [], [])
    assert len(fuse_boxes([empty, empty], [1.0, 1.0], (100, 100), Fusion())[0]) == 0
    with pytest.raises(ConfigError):
        fuse_boxes([a], [1.0, 2.0], (100, 100), Fusion())
    with pytest.raises(ConfigError):
        Fusion(conf_type="avg")  # the package's default can score above 1


def test_hflip_boxes_round_trip() -> None:
    boxes = np.array([[3, 4, 20, 30]], np.float32)
    assert hflip_boxes(hflip_boxes(boxes, 64), 64).tolist() == boxes.tolist()


def test_tta_views_always_include_the_plain_image() -> None:
    assert TestTimeAugmentation(hflip=False, scales=(1.5,)).views() == ((1.0, False), (1.5, False))


@pytest.fixture(scope="module")
def chest(shared_data):  # type: ignore[no-untyped-def]
    path = shared_data / "cxr" / "tbx11k" / "images" / "tb0020.jpg"
    if not path.is_file():
        pytest.skip("TBX11K sample not found")
    return read_image(path).pixels


def test_flip_tta_is_mirror_equivariant_on_a_real_chest_x_ray(chest, one_thread) -> None:  # type: ignore[no-untyped-def]
    """Flip-only TTA sees the same two views of an image and of its mirror image, so the
    mirror image's boxes are the image's boxes mirrored."""
    tta = TestTimeAugmentation(hflip=True, scales=(1.0,))
    predictor = load_predictor(task="detection", tta=tta, conf_threshold=0.05)
    plain = predictor.find_boxes([chest], 0.05, 0.45, 300)[0]
    mirrored = predictor.find_boxes([np.ascontiguousarray(chest[:, ::-1])], 0.05, 0.45, 300)[0]
    assert len(plain[0]) > 0
    order = np.argsort(plain[1])
    back = hflip_boxes(mirrored[0], chest.shape[1])[np.argsort(mirrored[1])]
    assert back == pytest.approx(plain[0][order], abs=0.5)
    assert np.sort(mirrored[1]) == pytest.approx(np.sort(plain[1]), abs=1e-3)


def test_tta_rescale_needs_a_graph_of_free_size() -> None:
    class FixedGraph:  # an ONNX export takes one input size only
        input_size = (64, 64)
        input_channels = 3

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return np.zeros((len(batch), 10, 7), np.float32)

    card = ModelCard("yolov5n", "detection", "0", ("a", "b"), (64, 64))
    flip_only = DetectionPredictor(FixedGraph(), card, tta=TestTimeAugmentation(scales=(1.0,)))
    assert flip_only.fused
    assert len(flip_only.predict_arrays([np.zeros((50, 80), np.float32)])[0].detections) == 0
    with pytest.raises(ConfigError, match="fixed input size"):
        DetectionPredictor(FixedGraph(), card, tta=TestTimeAugmentation(scales=(1.0, 1.25)))

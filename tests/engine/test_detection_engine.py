"""Tests for the detection engine: postprocessing, ONNX export and runtime, weights, overlays."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine import (
    Detection,
    DetectionPredictor,
    DetectionResult,
    OnnxBackend,
    TorchBackend,
    export_onnx,
    load_model,
    load_predictor,
    load_weights,
    postprocess,
    prepare_image,
    save_weights,
    select_boxes,
    write_model,
    write_overlay,
)
from insightray.engine.overlay import class_colour
from insightray.errors import ConfigError, CorruptFileError
from insightray.imaging import write_png
from insightray.imaging.transforms import LetterboxInfo, letterbox
from insightray.models import ModelCard, create_model, load_card
from insightray.models.catalog import sha256_file

#: Network input side for every model test: small enough for a 2-core CPU.
SIZE = 64
#: ONNX Runtime must reproduce PyTorch's objectness and class scores to this absolute
#: tolerance (measured: under 1e-5).
ORT_SCORE_ATOL = 1e-4
#: Box values (cx, cy, w, h in input pixels) to 1e-4 px plus 1e-3 of the value: float32
#: accumulation-order noise grows with the value, and box sides reach ~800 px here (measured:
#: at most 0.012 px, 2.2e-4 relative; PyTorch fused vs unfused already differ by 0.004 px).
ORT_BOX_ATOL_PX, ORT_BOX_RTOL = 1e-4, 1e-3
#: Final boxes from the two backends, in original pixels, must agree to this many pixels: they
#: inherit the raw boxes' float32 noise above (0.0016 px seen in CI on a loaded machine).
BOX_ATOL_PX = 0.02
LABELS = ("nodule", "mass")


def _card(thresholds: dict[str, float] | None = None) -> ModelCard:
    return ModelCard(
        "yolov5n", "detection", "0.1.0", LABELS, (SIZE, SIZE), thresholds=thresholds or {}
    )


def _well_conditioned(model: nn.Module, head_scale: float = 0.03) -> nn.Module:
    """Give random weights image-dependent, well-separated scores.

    Straight from initialisation, activations shrink layer by layer, so every cell scores
    about the same and the order of near-ties would decide the comparison. Batch-norm
    statistics measured on noise images restore the signal; smaller head weights keep the
    sigmoids out of saturation (top scores then differ by more than 1e-5).
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one batch gives its exact statistics
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, SIZE, SIZE))
        for head in model.get_submodule("detect.heads").modules():
            if isinstance(head, nn.Conv2d):
                head.weight.mul_(head_scale)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    """A random-weights yolov5n with 2 classes and calibrated batch norms."""
    torch.manual_seed(0)
    return _well_conditioned(create_model("yolov5n", num_classes=len(LABELS)))


@pytest.fixture(scope="module")
def onnx_path(model: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "yolov5n.onnx", SIZE)


def _images(count: int, seed: int = 1) -> list[NDArray[np.float32]]:
    """Non-square noise images with some structure, so that predictions differ by cell."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        rows, cols = (90 + 10 * index, 150)
        image = rng.random((rows, cols), dtype=np.float32) * 0.3
        image[20:60, 30 + 10 * index : 90] += 0.6
        images.append(image)
    return images


# --- postprocessing on hand-made predictions -------------------------------------------------

#: Rows are cx, cy, w, h (letterboxed pixels), objectness, class 0, class 1.
HAND_MADE = np.array(
    [
        [32, 32, 20, 10, 0.9, 0.9, 0.1],  # A: class 0, score 0.81, kept
        [33, 32, 20, 10, 0.8, 0.9, 0.1],  # B: class 0, 0.72, IoU 0.905 with A: suppressed
        [33, 32, 20, 10, 0.9, 0.2, 0.8],  # C: class 1, 0.72, overlaps A but another class: kept
        [10, 40, 8, 8, 0.5, 0.4, 0.1],  # D: 0.20, under the 0.25 threshold
        [50, 40, 8, 8, 0.6, 0.1, 0.5],  # E: class 1, 0.30, kept
        [32, 6, 10, 6, 0.9, 0.9, 0.0],  # F: 0.81 but wholly in the top padding: dropped
        [60, 20, 10, 10, 0.7, 0.0, 0.9],  # G: class 1, 0.63, clipped at the right and top
    ],
    dtype=np.float32,
)


def _hand_made_info() -> LetterboxInfo:
    # 100 rows x 200 columns into 64 x 64: scale 0.32, resized to 32 x 64, 16 rows of padding.
    _, info = letterbox(np.zeros((100, 200), np.float32), SIZE)
    assert info.scale == (0.32, 0.32) and info.pad == (0, 16)
    return info


def test_postprocess_thresholds_suppresses_and_maps_to_original_pixels() -> None:
    detections = postprocess(HAND_MADE, _hand_made_info(), LABELS)
    # Expected: (x - 0) / 0.32 and (y - 16) / 0.32, clipped to 200 x 100.
    expected = [
        (0, 0.81, (68.75, 34.375, 131.25, 65.625)),  # A
        (1, 0.72, (71.875, 34.375, 134.375, 65.625)),  # C
        (1, 0.63, (171.875, 0.0, 200.0, 28.125)),  # G
        (1, 0.30, (143.75, 62.5, 168.75, 87.5)),  # E
    ]
    assert [d.class_id for d in detections] == [cls for cls, _, _ in expected]
    assert [d.class_name for d in detections] == ["nodule", "mass", "mass", "mass"]
    for detection, (_, score, box) in zip(detections, expected, strict=True):
        assert detection.score == pytest.approx(score, abs=1e-6)
        np.testing.assert_allclose(detection.box_px, box, atol=1e-4)
        assert detection.box_mm is None


def test_postprocess_thresholds_and_max_det_are_configurable() -> None:
    info = _hand_made_info()
    loose = postprocess(HAND_MADE, info, LABELS, conf_threshold=0.1, iou_threshold=0.95)
    assert len(loose) == 6  # B survives a 0.95 IoU, D the 0.1 threshold; F is still dropped
    top_two = postprocess(HAND_MADE, info, LABELS, max_det=2)
    assert [d.score for d in top_two] == pytest.approx([0.81, 0.72])
    with pytest.raises(ConfigError, match="labels"):
        postprocess(HAND_MADE, info, ("only_one",))


def test_postprocess_maps_boxes_to_millimetres_with_row_and_column_spacing() -> None:
    detections = postprocess(HAND_MADE, _hand_made_info(), LABELS, pixel_spacing=(0.5, 0.25))
    first = detections[0]
    assert first.box_mm is not None
    # x by the column spacing (0.25 mm), y by the row spacing (0.5 mm).
    np.testing.assert_allclose(first.box_mm, (17.1875, 17.1875, 32.8125, 32.8125), atol=1e-5)


def test_select_boxes_handles_no_candidates() -> None:
    boxes, scores, classes = select_boxes(HAND_MADE, conf_threshold=0.99)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)


def test_prepare_image_repeats_grey_to_channels_and_scales_integers() -> None:
    image, info = prepare_image(np.full((30, 60), 255, np.uint8), (SIZE, SIZE), 3)
    assert image.shape == (3, SIZE, SIZE) and image.dtype == np.float32
    assert info.pad == (0, 16)
    assert image[:, 16:48].min() == pytest.approx(1.0) and image[:, :16].max() == 0.0


# --- JSON contract --------------------------------------------------------------------------


def test_result_json_matches_the_cli_contract() -> None:
    detection = Detection(1, "mass", 0.5, (1.0, 2.0, 3.0, 4.0), (0.1, 0.2, 0.3, 0.4))
    result = DetectionResult("a.dcm", (detection,), (100, 200), (0.2, 0.1), "yolov5n", "0.1.0")
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {
        "image", "model", "original_size", "pixel_spacing_mm", "detections", "warnings", "ood_score"
    }  # fmt: skip
    assert data["warnings"] == [] and data["ood_score"] is None  # not checked by a guard
    assert data["model"] == {"name": "yolov5n", "version": "0.1.0"}
    assert data["original_size"] == [100, 200] and data["pixel_spacing_mm"] == [0.2, 0.1]
    assert data["detections"] == [
        {
            "class_id": 1,
            "class_name": "mass",
            "score": 0.5,
            "box": [1.0, 2.0, 3.0, 4.0],
            "box_mm": [0.1, 0.2, 0.3, 0.4],
        }
    ]


# --- ONNX export and ONNX Runtime -----------------------------------------------------------


def test_onnx_export_passes_the_checker_and_matches_pytorch(
    model: nn.Module, onnx_path: Path
) -> None:
    onnx.checker.check_model(str(onnx_path), full_check=True)
    graph = onnx.load(str(onnx_path)).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == ["predictions"]
    assert model.training is False  # export worked on a copy and left the model alone
    batch = np.stack([prepare_image(img, (SIZE, SIZE), 3)[0] for img in _images(3)])
    ort_out = OnnxBackend(onnx_path, intra_op_num_threads=2)(batch)  # dynamic batch of 3
    torch_out = TorchBackend(_copy(model))(batch)
    assert ort_out.shape == torch_out.shape == (3, 252, 7)
    np.testing.assert_allclose(ort_out[..., 4:], torch_out[..., 4:], atol=ORT_SCORE_ATOL, rtol=0)
    np.testing.assert_allclose(
        ort_out[..., :4], torch_out[..., :4], atol=ORT_BOX_ATOL_PX, rtol=ORT_BOX_RTOL
    )


def test_final_boxes_match_between_onnx_runtime_and_pytorch(
    model: nn.Module, onnx_path: Path
) -> None:
    card = _card()
    onnx_predictor = DetectionPredictor(OnnxBackend(onnx_path), card, conf_threshold=0, max_det=8)
    torch_backend = TorchBackend(_copy(model))
    torch_predictor = DetectionPredictor(torch_backend, card, conf_threshold=0, max_det=8)
    images = _images(3)
    spacings = [(0.2, 0.3), None, (0.1, 0.1)]
    from_onnx = onnx_predictor.predict_arrays(images, spacings, batch_size=2)
    from_torch = torch_predictor.predict_arrays(images, spacings, batch_size=2)
    for ort_result, torch_result in zip(from_onnx, from_torch, strict=True):
        assert len(ort_result.detections) == len(torch_result.detections) > 0
        for a, b in zip(ort_result.detections, torch_result.detections, strict=True):
            assert a.class_id == b.class_id
            assert a.score == pytest.approx(b.score, abs=ORT_SCORE_ATOL)
            np.testing.assert_allclose(a.box_px, b.box_px, atol=BOX_ATOL_PX)
    assert from_onnx[1].detections[0].box_mm is None
    assert from_onnx[0].detections[0].box_mm is not None


def test_fixed_batch_export_runs_image_by_image_and_fixes_the_size(
    model: nn.Module, tmp_path: Path
) -> None:
    path = export_onnx(model, tmp_path / "fixed.onnx", SIZE, dynamic_batch=False)
    backend = OnnxBackend(path, intra_op_num_threads=1)
    assert backend.input_size == (SIZE, SIZE) and backend.input_channels == 3
    batch = np.zeros((2, 3, SIZE, SIZE), np.float32)
    assert backend(batch).shape == (2, 252, 7)
    with pytest.raises(ConfigError, match="exactly"):
        DetectionPredictor(backend, _card(), image_size=2 * SIZE)


def test_export_refuses_sizes_that_are_not_multiples_of_32(
    model: nn.Module, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        export_onnx(model, tmp_path / "bad.onnx", 70)


# --- weights --------------------------------------------------------------------------------


def test_weights_round_trip_in_half_precision_with_checksum(
    model: nn.Module, tmp_path: Path
) -> None:
    card = write_model(tmp_path, model, _card())
    assert card.weights_file is not None and card.weights_sha256 is not None
    weights = tmp_path / card.weights_file
    assert sha256_file(weights) == card.weights_sha256
    assert load_card(tmp_path / "card.json") == card
    state = load_weights(weights)
    original = model.state_dict()
    assert state["detect.anchors"].dtype == torch.float32
    assert torch.equal(state["detect.anchors"], original["detect.anchors"])
    name = "detect.heads.0.weight"
    assert torch.equal(state[name], original[name].half().float())
    float32_bytes = sum(t.numel() * 4 for t in original.values() if t.is_floating_point())
    assert weights.stat().st_size < 0.6 * float32_bytes
    loaded = load_model(card, weights)
    assert loaded.training is False
    rounded = _copy(model)  # the original with every half-precision tensor rounded to half
    rounded.load_state_dict(state)
    image = torch.from_numpy(np.stack([prepare_image(_images(1)[0], (SIZE, SIZE), 3)[0]]))
    with torch.no_grad():
        assert torch.equal(loaded(image)[0], rounded(image)[0])


def test_tampered_or_unchecked_weights_are_refused(model: nn.Module, tmp_path: Path) -> None:
    card = write_model(tmp_path, model, _card())
    assert card.weights_file is not None
    weights = tmp_path / card.weights_file
    with pytest.raises(ConfigError, match="weights_sha256 is missing"):
        load_model(dataclasses.replace(card, weights_sha256=None), weights)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="SHA-256"):
        load_model(card, weights)
    with pytest.raises(ConfigError, match="do not fit"):
        fresh = tmp_path / "fresh.pt"
        digest = save_weights(create_model("yolov5n", num_classes=3), fresh)
        load_model(dataclasses.replace(card, weights_sha256=digest), fresh)


def test_load_predictor_builds_torch_and_onnx_predictors(model: nn.Module, tmp_path: Path) -> None:
    card = write_model(tmp_path, model, _card(thresholds={"conf": 0.0, "iou": 0.5}))
    card_path = tmp_path / "card.json"
    assert card.weights_file is not None
    by_torch = load_predictor(card_path, task="detection", backend="torch", max_det=5)
    by_onnx = load_predictor(card_path, task="detection", backend="onnx", max_det=5)
    assert (tmp_path / card.weights_file).with_suffix(".onnx").is_file()  # exported once
    assert by_torch.conf_threshold == 0.0 and by_torch.iou_threshold == 0.5
    image = _images(1)
    first, second = by_torch.predict_arrays(image)[0], by_onnx.predict_arrays(image)[0]
    assert len(first.detections) == len(second.detections) == 5
    np.testing.assert_allclose(
        first.detections[0].box_px, second.detections[0].box_px, atol=BOX_ATOL_PX
    )
    with pytest.raises(ConfigError, match="unknown backend"):
        load_predictor(card_path, backend="tensorrt")


# --- overlay and real files -----------------------------------------------------------------


def test_overlay_png_is_written_on_the_original_image(tmp_path: Path) -> None:
    image = np.full((90, 150), 0.5, np.float32)
    detection = Detection(1, "mass", 0.87, (20.0, 30.0, 80.0, 70.0))
    path = write_overlay(image, [detection], tmp_path / "out" / "overlay.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (90, 150, 3)
    assert tuple(drawn[50, 80]) == class_colour(1)  # right edge of the box
    assert tuple(drawn[85, 5]) == (128, 128, 128)  # untouched grey


def test_predict_paths_reads_png_without_spacing(model: nn.Module, tmp_path: Path) -> None:
    png = write_png(_images(1)[0], tmp_path / "a.png")
    predictor = DetectionPredictor(
        TorchBackend(_copy(model)), _card(), conf_threshold=0.0, max_det=3
    )
    result = predictor.predict_paths([png])[0]
    assert result.path == str(png) and result.original_size == (90, 150)
    assert result.pixel_spacing is None and len(result.detections) == 3


def test_real_dicom_gets_boxes_in_millimetres(model: nn.Module, shared_data: Path) -> None:
    path = shared_data / "dicom" / "cr_chest_pa_jpeg_baseline.dcm"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    predictor = DetectionPredictor(
        TorchBackend(_copy(model)), _card(), conf_threshold=0.0, max_det=3
    )
    result = predictor.predict_paths([path, path], batch_size=2)[1]
    assert result.pixel_spacing == pytest.approx((0.168, 0.168))
    assert result.detections
    for detection in result.detections:
        assert detection.box_mm is not None
        np.testing.assert_allclose(detection.box_mm, np.array(detection.box_px) * 0.168, rtol=1e-6)
    assert json.loads(json.dumps(result.to_dict()))["pixel_spacing_mm"] == pytest.approx(
        [0.168] * 2
    )


def _copy(model: nn.Module) -> nn.Module:
    """A copy, since TorchBackend fuses the model it is given in place."""
    return copy.deepcopy(model)

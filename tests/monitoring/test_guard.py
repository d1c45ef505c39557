"""The out-of-distribution guard of the bundled chest detector, on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightray.engine import load_predictor
from insightray.engine.detection import DetectionPredictor, DetectionResult
from insightray.imaging import ImageMeta, LoadedImage, read_image
from insightray.models.catalog import resolve_card
from insightray.monitoring.guard import OodGuard
from insightray.monitoring.profile import load_profile

DETECTOR = "cxr-tbx11k-yolov5s"


@pytest.fixture(scope="module")
def detector() -> tuple[DetectionPredictor, OodGuard]:
    predictor = load_predictor(DETECTOR, task="detection")
    guard = OodGuard.for_model(predictor, DETECTOR, "detection")
    assert guard is not None, "the bundled detector ships a reference profile"
    return predictor, guard


def _run(
    model: tuple[DetectionPredictor, OodGuard], images: list[LoadedImage]
) -> list[DetectionResult]:
    predictor, guard = model
    return guard.run(lambda: predictor.predict(images), images)


def test_the_bundled_profile_comes_from_the_training_split() -> None:
    profile = load_profile(resolve_card(DETECTOR, default=""))
    assert profile is not None
    assert len(profile.table) == 500 and "train_list.txt" in profile.data
    assert profile.accepted_body_parts == ("CHEST",) and profile.rate == 0.01
    assert {"output_boxes", "output_max_score", "mean", "rows"} <= set(profile.table.continuous)


def test_validation_chest_x_rays_pass_and_the_guard_leaves_the_boxes_alone(
    detector: tuple[DetectionPredictor, OodGuard], shared_data: Path
) -> None:
    tbx = shared_data / "cxr" / "tbx11k"
    names = (tbx / "val_list.txt").read_text().split()[:6]
    images = [read_image(tbx / name) for name in names]
    guarded = _run(detector, images)
    plain = detector[0].predict(images)
    assert [r.detections for r in guarded] == [r.detections for r in plain]
    assert sum(bool(r.warnings) for r in guarded) <= 1
    assert all(r.ood_score is not None and r.ood_score >= 0 for r in guarded)


def test_other_modalities_body_parts_and_bone_x_rays_are_named(
    detector: tuple[DetectionPredictor, OodGuard], shared_data: Path
) -> None:
    ct = read_image(shared_data / "dicom" / "ct_brain_slice.dcm")
    tibia = read_image(shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm")
    bones = sorted((shared_data / "fracture" / "bone_fracture_roboflow" / "images").glob("*.jpg"))
    bone = read_image(bones[0])
    results = _run(detector, [ct, tibia, bone])
    assert any(w.startswith("modality CT") for w in results[0].warnings)
    assert any(w.startswith("body part EXTREMITY") for w in results[1].warnings)
    assert any(w.startswith("content unlike") for w in results[2].warnings)
    assert results[2].ood_score is not None and results[2].ood_score > 1
    record = results[0].to_dict()
    assert record["warnings"] and record["ood_score"] > 0


def test_blank_saturated_and_inverted_images_are_named(
    detector: tuple[DetectionPredictor, OodGuard], shared_data: Path
) -> None:
    tbx = shared_data / "cxr" / "tbx11k" / "images" / "tb0005.jpg"
    chest = read_image(tbx)
    meta = ImageMeta("png", (512, 512), "MONOCHROME2", 8)
    blank = LoadedImage(np.zeros((512, 512), np.float32), meta)
    saturated = LoadedImage(np.ones((512, 512), np.float32), meta)
    inverted = LoadedImage(1.0 - chest.pixels, chest.meta)
    results = _run(detector, [blank, saturated, inverted])
    assert results[0].warnings[0].startswith("blank image")
    assert results[1].warnings[0].startswith("saturated image")
    assert results[2].warnings, "an inverted chest X-ray is flagged"

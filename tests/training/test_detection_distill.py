"""Detector knowledge distillation: the loss terms, one step, the trainer's output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from insightray.cli import app
from insightray.engine import load_model, write_model
from insightray.errors import ConfigError
from insightray.models import Lineage, ModelCard, create_model, load_card
from insightray.models.detection.yolo import YoloV5
from insightray.training.augment import AugmentConfig
from insightray.training.detection import TrainConfig, train_detector
from insightray.training.detection.distill import (
    DetectorDistiller,
    distillation_terms,
    load_detector_teacher,
    student_config,
)
from insightray.training.detection.loss import LossConfig
from insightray.training.detection.prune import FineTune

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ("ActiveTuberculosis", "ObsoletePulmonaryTuberculosis")
SIZE = 64


def _detector_folder(folder: Path, variant: str, labels: tuple[str, ...] = LABELS) -> Path:
    torch.manual_seed(0)
    card = ModelCard(variant, "detection", "0.1.0", labels, (SIZE, SIZE))
    write_model(folder, create_model(variant, num_classes=len(labels)), card)
    return folder


def _raw(seed: int, batch: int = 2, classes: int = 2) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, s, s, 5 + classes, generator=generator) for s in (8, 4, 2)]


def test_distillation_terms_vanish_only_when_the_outputs_agree() -> None:
    teacher = _raw(0)
    obj, cls = distillation_terms(teacher, teacher, 2, LossConfig(img_size=SIZE))
    assert obj.item() == pytest.approx(0.0, abs=1e-6) and cls.item() == pytest.approx(0.0, abs=1e-6)
    obj, cls = distillation_terms(_raw(1), teacher, 2, LossConfig(img_size=SIZE))
    assert obj.item() > 1e-4 and cls.item() > 1e-4
    _, single = distillation_terms(_raw(1, classes=1), _raw(0, classes=1), 1, LossConfig())
    assert single.item() == 0.0  # one class: objectness says it all, as in the YOLO loss


def test_one_distillation_step_lowers_the_distillation_loss(tmp_path: Path) -> None:
    teacher = load_detector_teacher(str(_detector_folder(tmp_path / "t", "yolov5s")), LABELS, 3)
    torch.manual_seed(1)
    student = create_model("yolov5n", num_classes=2).train()
    assert isinstance(student, YoloV5)
    distiller = DetectorDistiller(teacher, student, LossConfig(img_size=SIZE), 1.0, 1.0)
    assert any(isinstance(a, torch.nn.Conv2d) for a in distiller.adaptors)  # widths differ
    images = torch.rand(2, 3, SIZE, SIZE)
    params = list(student.parameters()) + list(distiller.parameters())
    optimizer = torch.optim.SGD(params, lr=1e-5)  # a small step: first order
    before, parts = distiller(images, student(images))
    assert (parts > 0).all()
    before.backward()
    optimizer.step()
    after, _ = distiller(images, student(images))
    assert after.item() < before.item()
    assert all(p.grad is None for p in teacher.network.parameters())


def test_trainer_with_a_teacher_writes_a_distilled_folder(tiny_data: Path, tmp_path: Path) -> None:
    teacher_folder = _detector_folder(tmp_path / "teacher", "yolov5n")
    teacher_card = load_card(teacher_folder / "card.json")
    weights = teacher_folder / str(teacher_card.weights_file)
    teacher_network = load_model(teacher_card, weights)
    assert isinstance(teacher_network, YoloV5)
    config = TrainConfig(
        data=str(tiny_data), model="yolov5n", image_size=SIZE, epochs=1, batch_size=4,
        workers=0, device="cpu", out=str(tmp_path / "run"), teacher=str(teacher_folder),
        augment=AugmentConfig(mosaic=0.0), distill_feature_weight=0.5,
    )  # fmt: skip
    result = train_detector(config)
    card = load_card(result.card_path)
    lineage = card.lineage
    assert lineage.method == "distilled" and lineage.parent is None
    assert lineage.settings["teacher_sha256"] == teacher_card.weights_sha256
    assert lineage.settings["distill_feature_weight"] == 0.5
    assert Lineage.from_dict(json.loads(result.card_path.read_text())["lineage"]) == lineage
    network = load_model(card, result.card_path.parent / str(card.weights_file))
    assert isinstance(network, YoloV5)  # no AutoAnchor refit: the teacher's anchors
    assert torch.equal(network.detect.anchors, teacher_network.detect.anchors)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["distiller"] == {}


def test_teacher_with_other_classes_or_anchors_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    other = _detector_folder(tmp_path / "other", "yolov5n", ("nodule",))
    config = TrainConfig(data=str(tiny_data), model="yolov5n", image_size=SIZE, epochs=1,
                         workers=0, device="cpu", out=str(tmp_path / "a"),
                         teacher=str(other))  # fmt: skip
    with pytest.raises(ConfigError, match="classes"):
        train_detector(config)
    teacher = load_detector_teacher(str(_detector_folder(tmp_path / "t", "yolov5n")), LABELS, 3)
    student = create_model("yolov5n", num_classes=2)
    assert isinstance(student, YoloV5)
    student.detect.anchors.mul_(1.5)
    with pytest.raises(ConfigError, match="anchors"):
        DetectorDistiller(teacher, student, LossConfig(), 1.0, 0.0)


def test_optimize_detect_distils_into_a_model_folder_student(
    tiny_data: Path, tmp_path: Path
) -> None:
    teacher = _detector_folder(tmp_path / "teacher", "yolov5s")
    student = _detector_folder(tmp_path / "student", "yolov5n")
    args = ["optimize", "detect", "--distill-from", str(teacher), "--student", str(student),
            "--data", str(tiny_data), "--epochs", "1", "--batch", "4", "--workers", "0",
            "--device", "cpu", "--lr0", "0.002", "--out", str(tmp_path / "kd")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    card = load_card(tmp_path / "kd" / "model_last" / "card.json")
    student_card = load_card(student / "card.json")
    assert card.lineage.method == "distilled"
    assert card.lineage.parent_sha256 == student_card.weights_sha256
    assert card.lineage.settings["lr0"] == 0.002
    bad = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "kd2"), "--int8"])
    assert isinstance(bad.exception, ConfigError) and "exactly one method" in str(bad.exception)


def test_a_size_name_student_starts_from_scratch_at_the_teachers_size(
    tiny_data: Path, tmp_path: Path
) -> None:
    teacher = _detector_folder(tmp_path / "teacher", "yolov5s")
    tuning = FineTune(str(tiny_data), epochs=2, lr0=0.005)
    config = student_config("yolov5n", str(teacher), tuning, tmp_path / "run", 0.5)
    assert (config.model, config.init, config.image_size) == ("yolov5n", "", SIZE)
    assert config.teacher == str(teacher) and config.distill_weight == 0.5
    assert config.warmup_epochs == TrainConfig().warmup_epochs and config.lr0 == 0.005
    with pytest.raises(ConfigError, match="no training data"):
        student_config("yolov5n", str(teacher), FineTune(), tmp_path / "run")

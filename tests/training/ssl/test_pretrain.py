"""Self-supervised pre-training on a few real radiographs: the loss falls, the backbone loads
into the fracture classifier and into the YOLOv5 detector."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("lightly", reason="self-supervised pre-training needs insightray[ssl]")

from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging import read_image
from insightray.models import create_model
from insightray.models.catalog import sha256_file
from insightray.models.classification import lite0_imagenet_path, load_pretrained
from insightray.models.classification.pretrained import read_state_dict
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.start import SslStart, start_model
from insightray.training.ssl import (
    PretrainConfig,
    RadiographViews,
    SslBackbone,
    SslObjective,
    pretrain,
)
from tests.engine.fracture_helpers import make_labelled_folder
from tests.test_cli_detect import cli


@pytest.fixture(scope="module")
def unlabelled(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight real radiographs (four chest, four bone) and one real CR DICOM, labels unused."""
    folder = tmp_path_factory.mktemp("unlabelled")
    chest = sorted((shared_data / "cxr" / "tbx11k" / "images").glob("*.jpg"))[:4]
    bone = sorted((shared_data / "fracture" / "bone_fracture_roboflow" / "images").glob("*.jpg"))
    dicom = shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm"
    if len(chest) < 4 or len(bone) < 4 or not dicom.is_file():
        pytest.skip("shared radiographs not found")
    for path in [*chest, *bone[:4], dicom]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.parametrize("method", ["simclr", "byol", "moco", "swav"])
def test_loss_falls_on_a_fixed_batch(method: str, unlabelled: Path, one_thread: None) -> None:
    """Eight optimiser steps on one batch of real radiograph views lower each method's loss."""
    config = PretrainConfig(
        data=(str(unlabelled),), method=method, image_size=48, batch_size=8, memory_bank=64,
        prototypes=16,
    )  # fmt: skip
    torch.manual_seed(0)
    objective = SslObjective(config, SslBackbone("efficientnet_lite0")).train()
    rng = np.random.default_rng(0)
    images = [read_image(p).pixels.astype(np.float32) for p in sorted(unlabelled.iterdir())[:8]]
    pairs = [
        RadiographViews(size=48)(cv2.resize(i, (60, 60)).astype(np.float32), rng) for i in images
    ]
    a = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
    b = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], 1e-3)
    losses = []
    for _ in range(8):
        loss = objective.loss(a, b)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        objective.update_targets()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    if method == "moco":
        # MoCo's loss grows while its memory bank fills with negatives, so steps are not
        # comparable; check instead that the momentum encoder follows the online one.
        online = next(objective.backbone.parameters())
        target = next(objective.target_backbone.parameters())
        assert not torch.equal(online, target) and not target.requires_grad
        return
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_pretrain_run_writes_backbone_and_card(unlabelled: Path, tmp_path: Path) -> None:
    config = PretrainConfig(
        data=(str(unlabelled),), method="simclr", image_size=48, steps=3, batch_size=4,
        device="cpu", out=str(tmp_path),
    )  # fmt: skip
    result = pretrain(config, log=lambda _: None)
    card = json.loads(result.card.read_text())
    assert card["method"] == "simclr" and card["images"] == 9  # the DICOM included
    assert len(result.losses) == 3 and (tmp_path / "metrics.csv").is_file()


def test_checkpoint_loads_into_classifier_via_cli_init(
    unlabelled: Path, tmp_path: Path, one_thread: None
) -> None:
    out = tmp_path / "ssl"
    code, stdout, stderr = cli(
        "pretrain", "--method", "simclr", "--arch", "efficientnet_lite0", "--data",
        str(unlabelled), "--out", str(out), "--steps", "2", "--batch", "4", "--img", "48",
        "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["steps"] == 2
    state = SslBackbone("efficientnet_lite0").backbone_state()
    classifier = create_model("efficientnet_lite0", num_classes=1, in_channels=1)
    report = load_pretrained(classifier, out / "backbone.safetensors")
    assert report.loaded == len(state) and report.skipped == []
    weights = load_file(str(out / "backbone.safetensors"))
    name = next(k for k in weights if k.endswith("weight") and weights[k].ndim == 4)
    assert torch.equal(classifier.state_dict()[name], weights[name])
    assert "_fc.weight" not in weights  # the head is left to the classifier

    labelled = make_labelled_folder(tmp_path / "labelled", count=12)
    code, _, stderr = cli(
        "train", "fracture", "--data", str(labelled), "--model", "efficientnet_lite0",
        "--steps", "2", "--img", "48", "--batch", "4", "--device", "cpu",
        "--out", str(tmp_path / "run"), "--init", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    card = json.loads((tmp_path / "run" / "model" / "card.json").read_text())
    assert card["lineage"]["parent"].endswith("backbone.safetensors")


def test_yolo_backbone_loads_into_the_detector(unlabelled: Path, tmp_path: Path) -> None:
    config = PretrainConfig(
        data=(str(unlabelled),), method="byol", arch="yolov5n", image_size=64, steps=2,
        batch_size=4, device="cpu", out=str(tmp_path),
    )  # fmt: skip
    result = pretrain(config, log=lambda _: None)
    detector = create_model("yolov5n", num_classes=2, in_channels=1)
    report = load_pretrained(detector, result.weights)
    names = set(detector.state_dict())
    backbone = {k for k in names if k.startswith("layers.") and int(k.split(".")[1]) <= 9}
    assert report.loaded == len(backbone) and report.skipped == []
    weights = load_file(str(result.weights))
    assert all(torch.equal(detector.state_dict()[k], v) for k, v in weights.items())

    # train detect --init FOLDER: the backbone is copied into a new detector, the head is new
    run = TrainConfig(data="data.yaml", model="yolov5n", channels=1, init=str(tmp_path))
    model, start = start_model(run, num_classes=2)
    assert isinstance(start, SslStart) and not start.keeps_head
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    lineage = start.lineage(run, "tiny")
    assert lineage.method == "trained" and lineage.parent_sha256 == sha256_file(result.weights)


def test_views_are_radiograph_views() -> None:
    image = np.linspace(0, 1, 80 * 80, dtype=np.float32).reshape(80, 80)
    a, b = RadiographViews(size=40)(image, np.random.default_rng(0))
    assert a.shape == b.shape == (40, 40) and a.ndim == 2  # gray stays gray
    assert not np.array_equal(a, b)


def test_bad_settings() -> None:
    with pytest.raises(ConfigError):
        PretrainConfig(data=("x",), method="dino")
    with pytest.raises(ConfigError):
        SslBackbone("nonexistent_model")
    with pytest.raises(InputNotFoundError):
        pretrain(PretrainConfig(data=("/nonexistent",), device="cpu"), log=lambda _: None)


def test_pretrain_starts_from_init_weights(unlabelled: Path, tmp_path: Path) -> None:
    """Domain-adaptive pre-training: the backbone starts from the ImageNet Lite0 weights."""
    imagenet = lite0_imagenet_path()
    config = PretrainConfig(
        data=(str(unlabelled),), image_size=48, steps=1, batch_size=4, lr=1e-5, device="cpu",
        init_weights=str(imagenet), out=str(tmp_path),
    )  # fmt: skip
    result = pretrain(config, log=lambda _: None)
    stem = load_file(str(result.weights))["_conv_stem.weight"]
    summed = read_state_dict(imagenet)["_conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(stem, summed, atol=1e-3)
    assert json.loads(result.card.read_text())["config"]["init_weights"] == str(imagenet)

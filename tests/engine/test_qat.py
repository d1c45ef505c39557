"""Quantisation-aware fine-tuning of a tiny detector: fake quantisation, the QDQ folder it
writes, its lineage, loading through the inference layer, and the verb's errors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.engine import OnnxBackend, load_predictor
from insightray.models import load_card
from insightray.models.layers import Conv
from insightray.training.detection.qat import fake_quantize, fake_quantized_convs
from tests.engine.test_prune import _parent_network
from tests.engine.test_quantize import SIZE, assert_backbone_int8_decode_float, tiny_detector_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")

parent = pytest.fixture(scope="module", name="parent")(tiny_detector_folder)


def test_fake_quantisation_rounds_the_backbone_trains_and_keeps_the_state_dict(
    parent: Path,
) -> None:
    network = _parent_network(parent)
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        before = network(images)[0]
    keys = list(network.state_dict())
    fake_quantize(network, [torch.rand(2, 3, SIZE, SIZE)])
    blocks = fake_quantized_convs(network)
    assert len(blocks) == sum(isinstance(m, Conv) for m in network.layers.modules())
    assert list(network.state_dict()) == keys, "checkpoints and model folders keep their keys"
    assert not network.training
    with torch.no_grad():
        after = network(images)[0]
    assert after.shape == before.shape and not torch.equal(after, before)
    stem = network.layers[0]
    assert isinstance(stem, Conv)
    with torch.no_grad():  # the stem's output is on a uint8 grid of 256 levels at most
        levels = torch.unique(stem(images))
    assert 2 < len(levels) <= 256

    assert stem.bn is not None
    assert stem.bn.running_mean is not None
    statistics = stem.bn.running_mean.clone()
    network.train()  # one optimiser step: gradients pass the rounding
    optimiser = torch.optim.SGD(network.parameters(), lr=0.1)
    loss = sum(raw.square().mean() for raw in network(images))
    loss.backward()
    weight = stem.conv.weight.detach().clone()
    assert stem.conv.weight.grad is not None and stem.conv.weight.grad.abs().sum() > 0
    optimiser.step()
    assert not torch.equal(weight, stem.conv.weight)
    assert torch.equal(statistics, stem.bn.running_mean), "the statistics stay frozen"
    ema = copy.deepcopy(network).eval()  # what the trainer's EMA does
    assert len(fake_quantized_convs(ema)) == len(blocks)
    assert getattr(ema.layers[0].forward, "__self__", None) is ema.layers[0]


def test_qat_fine_tunes_through_the_trainer_and_writes_the_int8_folder(
    parent: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "qat"
    code, stdout, stderr = cli(
        "optimize", "detect", "--qat", "--model", str(parent), "--data", str(tiny_data),
        "--epochs", "1", "--batch", "4", "--lr0", "0.001", "--workers", "0", "--device", "cpu",
        "--images", "4", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    card = load_card(out / "card.json")
    assert card.weights_file == "weights.onnx" and card.version == "0.1.0+qat"
    assert_backbone_int8_decode_float(out / card.weights_file)
    lineage = card.lineage
    assert lineage.method == "qat"
    assert lineage.parent_sha256 == load_card(parent / "card.json").weights_sha256
    assert lineage.settings["fine_tune_epochs"] == 1 and lineage.settings["fine_tune_lr0"] == 0.001
    assert lineage.settings["calibration_images"] == 4
    assert "8 training" in lineage.data and "4 training images" in lineage.data
    tuned = load_card(out / "finetune" / "model_last" / "card.json")
    assert lineage.settings["fine_tuned_sha256"] == tuned.weights_sha256 != lineage.parent_sha256
    assert load_card(out / "card.json") == card, "the card round-trips"

    qat = load_predictor(out, task="detection", conf_threshold=0.0, max_det=5)
    fp32 = load_predictor(parent, task="detection", backend="onnx", conf_threshold=0.0, max_det=5)
    assert isinstance(qat.backend, OnnxBackend)
    batch = np.random.default_rng(1).random((2, 3, SIZE, SIZE), dtype=np.float32)
    ours, theirs = qat.backend(batch), fp32.backend(batch)
    assert ours.shape == theirs.shape and ours[..., 4].max() > 0.01
    image = (tiny_data.parent / "val.txt").read_text().split()[0]
    code, stdout, stderr = cli("detect", image, "--model", str(out), "--json")
    assert code == 0 and '"version": "0.1.0+qat"' in stdout, stderr


def test_qat_refuses_other_methods_and_missing_data(parent: Path, tmp_path: Path) -> None:
    code, _, stderr = cli("optimize", "detect", "--qat", "--int8", "--out", str(tmp_path / "a"))
    assert code != 0 and "exactly one method" in stderr and "Traceback" not in stderr
    code, _, stderr = cli("optimize", "detect", "--qat", "--prune", "0.3",
                          "--out", str(tmp_path / "b"))  # fmt: skip
    assert code != 0 and "exactly one method" in stderr
    code, _, stderr = cli("optimize", "detect", "--qat", "--model", str(parent),
                          "--out", str(tmp_path / "c"))  # fmt: skip
    assert code != 0 and "no fine-tuning data" in stderr and "--data" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "c").exists()

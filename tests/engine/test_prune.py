"""Structured pruning of a tiny detector: shapes, size, reload from the card, lineage, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.engine import load_model, load_predictor
from insightray.engine.prune import prune_network, recalibrate_batchnorm
from insightray.errors import ConfigError
from insightray.imaging import write_png
from insightray.models import load_card
from insightray.models.detection.yolo import YoloV5, count_parameters, gflops
from insightray.training.detection.prune import FineTune, prune_detector
from tests.engine.test_quantize import SIZE, tiny_detector_folder

pytestmark = pytest.mark.usefixtures("one_thread")


parent = pytest.fixture(scope="module", name="parent")(tiny_detector_folder)


def _parent_network(parent: Path) -> YoloV5:
    card = load_card(parent / "card.json")
    network = load_model(card, parent / str(card.weights_file))
    assert isinstance(network, YoloV5)
    return network


def test_pruning_keeps_the_output_shapes_and_removes_parameters_and_flops(parent: Path) -> None:
    network = _parent_network(parent)
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        before, raw_before = network(images)
    report = prune_network(network, 0.5, SIZE)
    with torch.no_grad():
        after, raw_after = network(images)
    assert after.shape == before.shape
    assert [r.shape for r in raw_after] == [r.shape for r in raw_before]
    assert report.params_after == count_parameters(network) < 0.5 * report.params_before
    assert report.gflops_after == pytest.approx(gflops(network, SIZE))
    assert report.gflops_after < 0.5 * report.gflops_before
    assert all(head.out_channels == 21 for head in network.detect.heads)
    assert report.channel_widths["layers.0.conv"][0] < 16  # the stem lost channels


def test_pruned_folder_reloads_through_the_registry_with_identical_outputs(
    parent: Path, tmp_path: Path
) -> None:
    card = prune_detector(parent, 0.3, tmp_path / "pruned", FineTune(epochs=0))
    in_memory = _parent_network(parent)
    prune_network(in_memory, 0.3, SIZE)  # deterministic: the same channels go
    with torch.no_grad():  # the folder keeps weights in float16, as every model folder does
        for name, tensor in in_memory.state_dict().items():
            if tensor.is_floating_point() and not name.endswith(("anchors", "stride")):
                tensor.copy_(tensor.half().float())
    reloaded = load_model(card, tmp_path / "pruned" / str(card.weights_file))
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(reloaded(images)[0], in_memory.eval()(images)[0])
    onnx = load_predictor(tmp_path / "pruned", task="detection", backend="onnx")
    batch = images.numpy()
    expected = reloaded(images)[0].detach().numpy()
    assert np.allclose(onnx.backend(batch), expected, rtol=1e-3, atol=1e-3)


def test_lineage_names_the_parent_and_the_pruning_and_round_trips(
    parent: Path, tmp_path: Path
) -> None:
    card = prune_detector(parent, 0.5, tmp_path / "pruned", FineTune(epochs=0))
    written = load_card(tmp_path / "pruned" / "card.json")
    assert written == card
    assert written.lineage.method == "pruned" and written.version == "0.1.0+pruned50"
    assert written.lineage.parent_sha256 == load_card(parent / "card.json").weights_sha256
    settings = written.lineage.settings
    assert settings["ratio"] == 0.5 and settings["fine_tune_epochs"] == 0
    assert settings["params_after"] < settings["params_before"]
    assert settings["gflops_64_after"] < settings["gflops_64_before"]
    widths = written.preprocessing.model_kwargs["channel_widths"]
    assert widths and all(len(pair) == 2 for pair in widths.values())


def test_batchnorm_recalibration_measures_the_pruned_network_and_keeps_its_weights(
    parent: Path, tmp_path: Path
) -> None:
    network = _parent_network(parent)
    prune_network(network, 0.5, SIZE)
    weights = {k: v.clone() for k, v in network.state_dict().items() if ".bn." not in k}
    batches = [torch.rand(4, 3, SIZE, SIZE) for _ in range(3)]
    assert recalibrate_batchnorm(network, batches) == 12
    stem = network.layers[0]
    with torch.no_grad():  # the stem's batch norm now holds the stem convolution's statistics
        features = stem.conv(torch.cat(batches))
    expected = features.mean(dim=(0, 2, 3))
    assert torch.allclose(stem.bn.running_mean, expected, atol=1e-5)
    assert stem.bn.momentum == 0.03 and not network.training  # restored
    after = network.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in weights.items())
    assert recalibrate_batchnorm(network, []) == 0
    assert torch.allclose(stem.bn.running_mean, expected, atol=1e-5), "no images: unchanged"

    paths = []
    for index in range(3):
        paths.append(tmp_path / f"{index}.png")
        write_png(np.random.default_rng(index).random((80, 96), dtype=np.float32), paths[-1])
    card = prune_detector(parent, 0.5, tmp_path / "pruned", FineTune(epochs=0), None, paths)
    assert card.lineage.settings["batchnorm_recalibration_images"] == 3


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.2, 1.5])
def test_a_ratio_outside_zero_one_is_a_config_error(parent: Path, ratio: float) -> None:
    with pytest.raises(ConfigError, match="must be in"):
        prune_detector(parent, ratio, "unused", FineTune(epochs=0))


def test_optimize_verb_refuses_bad_ratios_and_two_methods(parent: Path, tmp_path: Path) -> None:
    from tests.test_cli_detect import cli

    code, _, stderr = cli("optimize", "detect", "--prune", "1.0", "--out", str(tmp_path / "a"))
    assert code != 0 and "--prune 1" in stderr and "Traceback" not in stderr
    code, _, stderr = cli(
        "optimize", "detect", "--prune", "0.3", "--int8", "--out", str(tmp_path / "b")
    )
    assert code != 0 and "exactly one method" in stderr
    code, _, stderr = cli("optimize", "detect", "--prune", "0.3", "--epochs", "0",
                          "--model", str(parent), "--out", str(tmp_path / "c"))  # fmt: skip
    assert code == 0 and "warning: no --calibration or --data" in stderr


def test_prune_then_fine_tune_through_the_trainer(
    parent: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from tests.test_cli_detect import cli

    out = tmp_path / "pruned"
    code, _, stderr = cli(
        "optimize", "detect", "--prune", "0.5", "--model", str(parent), "--data", str(tiny_data),
        "--epochs", "1", "--batch", "4", "--workers", "0", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    card = load_card(out / "card.json")
    assert card.lineage.method == "pruned" and card.lineage.settings["fine_tune_epochs"] == 1
    assert "8 training" in card.lineage.data
    start = load_card(out / "pruned" / "card.json")
    assert card.preprocessing.model_kwargs == start.preprocessing.model_kwargs
    assert card.weights_sha256 != start.weights_sha256  # the fine-tune changed the weights
    tuned = load_card(out / "finetune" / "model_last" / "card.json")
    assert (
        tuned.lineage.method == "fine-tuned" and tuned.lineage.parent_sha256 == start.weights_sha256
    )
    image = tiny_data.parent / "val.txt"
    code, stdout, stderr = cli(
        "detect", image.read_text().split()[0], "--model", str(out), "--json"
    )
    assert code == 0 and '"version": "0.1.0+pruned50"' in stdout, stderr

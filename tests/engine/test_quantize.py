"""INT8 quantisation of a tiny detector: the decode stays in float, lineage, auto backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from insightray.engine import OnnxBackend, load_predictor, quantize, write_model
from insightray.engine.quantize import float_nodes, quantize_detector
from insightray.errors import ConfigError
from insightray.imaging import write_png
from insightray.models import ModelCard, create_model, load_card

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64


def tiny_detector_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random YOLOv5n model folder with two classes at 64 px."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("parent")
    card = ModelCard("yolov5n", "detection", "0.1.0", ("nodule", "mass"), (SIZE, SIZE))
    write_model(folder, create_model("yolov5n", num_classes=2), card)
    return folder


parent = pytest.fixture(scope="module", name="parent")(tiny_detector_folder)


def assert_backbone_int8_decode_float(path: Path) -> None:
    """Every backbone and neck convolution reads int8 weights and inputs; the Detect head's
    convolutions read int8 inputs only, and nothing after them reads an int8 tensor."""
    graph = onnx.load(str(path))
    produced_by = {out: node for node in graph.graph.node for out in node.output}
    names = {node.name: node for node in graph.graph.node}
    decode = [name for name in float_nodes(graph) if name in names]
    assert any(names[name].op_type == "Sigmoid" for name in decode)
    for name in decode:
        for tensor in names[name].input:
            source = produced_by.get(tensor)
            feeds_head_conv = names[name].op_type == "Conv" and tensor == names[name].input[0]
            if source is not None and source.op_type == "DequantizeLinear":
                assert feeds_head_conv, f"{name} ({names[name].op_type}) reads an int8 tensor"
    convs = [n for n in graph.graph.node if n.op_type == "Conv" and n.name not in decode]
    assert convs, "the backbone has convolutions"
    for conv in convs:
        sources = [produced_by.get(tensor) for tensor in conv.input[:2]]
        assert all(s is not None and s.op_type == "DequantizeLinear" for s in sources), conv.name


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(0)
    paths = []
    for index in range(6):
        path = folder / f"{index}.png"
        write_png(rng.random((80, 96), dtype=np.float32), path)
        paths.append(path)
    return paths


def test_int8_model_keeps_the_decode_in_float_and_names_its_parent(
    parent: Path, images: list[Path], tmp_path: Path
) -> None:
    card = quantize_detector(parent, images, tmp_path / "int8")
    assert_backbone_int8_decode_float(tmp_path / "int8" / str(card.weights_file))
    written = load_card(tmp_path / "int8" / "card.json")
    assert written == card and written.lineage.method == "quantised"
    assert written.lineage.parent_sha256 == load_card(parent / "card.json").weights_sha256
    assert written.lineage.settings["calibration_images"] == len(images)


def test_int8_model_loads_on_onnx_runtime_by_default_and_tracks_its_parent(
    parent: Path, images: list[Path], tmp_path: Path
) -> None:
    quantize_detector(parent, images, tmp_path / "int8")
    int8 = load_predictor(tmp_path / "int8", task="detection", conf_threshold=0.0, max_det=5)
    fp32 = load_predictor(parent, task="detection", backend="onnx", conf_threshold=0.0, max_det=5)
    assert isinstance(int8.backend, OnnxBackend)
    batch = np.random.default_rng(1).random((2, 3, SIZE, SIZE), dtype=np.float32)
    ours, theirs = int8.backend(batch), fp32.backend(batch)
    assert ours.shape == theirs.shape
    scores = ours[..., 4]
    assert scores.max() > 0.01, "quantising the decode would zero every confidence"
    assert np.abs(ours[..., 4:] - theirs[..., 4:]).max() < 0.1


def test_calibration_in_chunks_gives_the_ranges_of_one_pass(
    parent: Path, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks bound memory (ONNX Runtime keeps every activation of a chunk); min-max merges
    exactly, so the quantised graphs agree."""

    def initializers(folder: Path) -> dict[str, np.ndarray]:
        graph = onnx.load(str(folder / "weights.onnx")).graph
        return {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}

    quantize_detector(parent, images, tmp_path / "one", method="minmax")
    monkeypatch.setattr(quantize, "CALIBRATION_CHUNK", 4)  # 6 images: chunks of 3
    quantize_detector(parent, images, tmp_path / "chunks", method="minmax")
    one, chunks = initializers(tmp_path / "one"), initializers(tmp_path / "chunks")
    assert one.keys() == chunks.keys()
    for name, value in one.items():
        np.testing.assert_array_equal(value, chunks[name], err_msg=name)


def test_quantize_refuses_bad_requests(parent: Path, images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration method"):
        quantize_detector(parent, images, tmp_path / "a", method="magic")
    with pytest.raises(ConfigError, match="no calibration images"):
        quantize_detector(parent, [], tmp_path / "b")
    with pytest.raises(ConfigError, match="not a trained detector"):
        quantize_detector("fracture-roboflow-lite0", images, tmp_path / "c")


def test_optimize_and_detect_verbs_run_the_int8_model(
    parent: Path, images: list[Path], tmp_path: Path
) -> None:
    from tests.test_cli_detect import cli

    out = tmp_path / "int8"
    code, _, stderr = cli(
        "optimize", "detect", "--int8", "--calibration", str(images[0].parent),
        "--model", str(parent), "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    code, stdout, stderr = cli("detect", str(images[0]), "--model", str(out), "--json")
    assert code == 0, stderr
    assert '"version": "0.1.0+int8"' in stdout
    code, _, stderr = cli("optimize", "detect", "--calibration", str(out), "--out", str(out))
    assert code != 0 and "--int8" in stderr
    exported = tmp_path / "files" / "model-int8.onnx"
    code, _, stderr = cli(
        "export", "detect", "--int8", "--calibration", str(images[0].parent),
        "--model", str(parent), "--out", str(exported),
    )  # fmt: skip
    assert code == 0, stderr
    card = load_card(exported.with_name("model-int8.card.json"))
    assert card.weights_file == exported.name and card.lineage.method == "quantised"
    code, stdout, stderr = cli("detect", str(images[0]), "--model", str(exported), "--json")
    assert code == 0 and '"version": "0.1.0+int8"' in stdout, stderr
    code, _, stderr = cli("export", "detect", "--int8", "--out", str(exported))
    assert code != 0 and "--calibration" in stderr

"""INT8 fracture classifier: int8 weights, a float logit, lineage, the registry and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from insightray.engine import load_predictor
from insightray.engine.classification_onnx import OnnxFracturePredictor
from insightray.engine.quantize import quantize_classifier
from insightray.errors import ConfigError
from insightray.imaging import read_image
from insightray.models import load_card
from tests.engine.fracture_helpers import make_fracture_model, make_labelled_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fracture_model(tmp_path_factory.mktemp("parent"), size=64).parent


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_folder(tmp_path_factory.mktemp("labelled"), count=12)


@pytest.fixture(scope="module")
def int8(parent: Path, labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int8")
    quantize_classifier(parent, sorted((labelled / "images").glob("*.png"))[:6], folder)
    return folder


def test_int8_graph_has_int8_weights_a_float_logit_and_names_its_parent(
    parent: Path, int8: Path
) -> None:
    card = load_card(int8 / "card.json")
    graph = onnx.load(str(int8 / card.weights_file)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    convolutions = [n for n in graph.node if n.op_type == "Conv"]
    assert len(int8_weights) >= len(convolutions) > 0, "every convolution has int8 weights"
    assert [o.type.tensor_type.elem_type for o in graph.output] == [onnx.TensorProto.FLOAT]
    (last,) = [n for n in graph.node if set(n.output) & {o.name for o in graph.output}]
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert last.op_type == "Gemm" and last.input[1] in floats, "the logit layer stays in float"
    parent_card = load_card(parent / "card.json")
    assert card.lineage.method == "quantised" and card.version == "0.0.1+int8"
    assert card.lineage.parent_sha256 == parent_card.weights_sha256
    assert card.lineage.settings["calibration_images"] == 6
    assert card.thresholds == parent_card.thresholds and card.labels == parent_card.labels


def test_int8_folder_classifies_through_the_registry_close_to_its_parent(
    parent: Path, int8: Path, labelled: Path
) -> None:
    quantised = load_predictor(int8, task="classification")
    original = load_predictor(parent, task="classification")
    assert isinstance(quantised, OnnxFracturePredictor)
    images = [read_image(p).pixels for p in sorted((labelled / "images").glob("*.png"))]
    ours, theirs = quantised.predict_logits(images), original.predict_logits(images)
    assert ours.shape == (len(images),) and np.isfinite(ours).all()
    spread = float(np.ptp(theirs))
    assert np.abs(ours - theirs).max() < 0.25 * spread + 0.05
    assert [r.label for r in quantised.predict_arrays(images)][:2] == [
        r.label for r in quantised.predict(images[:2])
    ]


def test_label_queue_refuses_an_int8_classifier_with_a_model_based_strategy(
    int8: Path, labelled: Path
) -> None:
    from insightray.active import rank_for_labelling

    quantised = load_predictor(int8, task="classification")
    paths = [str(p) for p in sorted((labelled / "images").glob("*.png"))[:4]]
    with pytest.raises(ConfigError, match="PyTorch network"):
        rank_for_labelling(quantised, paths, "entropy", 2)
    assert len(rank_for_labelling(quantised, paths, "random", 2).items) == 2


def test_quantize_classifier_refuses_bad_requests(
    parent: Path, int8: Path, labelled: Path, tmp_path: Path
) -> None:
    images = sorted((labelled / "images").glob("*.png"))[:2]
    with pytest.raises(ConfigError, match="not a trained classifier"):
        quantize_classifier("cxr-tbx11k-yolov5s", images, tmp_path / "a")
    with pytest.raises(ConfigError, match="ONNX export already"):
        quantize_classifier(int8, images, tmp_path / "b")
    with pytest.raises(ConfigError, match="calibration method"):
        quantize_classifier(parent, images, tmp_path / "c", method="magic")
    with pytest.raises(ConfigError, match="this classifier is an ONNX graph"):
        load_predictor(int8, task="classification", backend="torch")


def test_optimize_classify_and_evaluate_verbs_run_the_int8_model(
    parent: Path, labelled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "int8"
    code, _, stderr = cli(
        "optimize", "fracture", "--int8", "--calibration", str(labelled / "images"),
        "--model", str(parent), "--out", str(out), "--images", "4",
    )  # fmt: skip
    assert code == 0, stderr
    image = sorted((labelled / "images").glob("*.png"))[0]
    code, stdout, stderr = cli("classify", "fracture", str(image), "--model", str(out), "--json")
    assert code == 0 and '"version": "0.0.1+int8"' in stdout, stderr
    code, stdout, stderr = cli(
        "evaluate", "fracture", "--model", str(out), "--data", str(labelled), "--json"
    )
    assert code == 0 and '"auc"' in stdout, stderr
    code, _, stderr = cli(
        "classify", "fracture", str(image), "--model", str(out), "--cam", str(tmp_path / "cam")
    )
    assert code != 0 and "Grad-CAM needs one PyTorch network" in stderr
    code, _, stderr = cli("optimize", "fracture", "--calibration", str(image), "--out", str(out))
    assert code != 0 and "--int8" in stderr

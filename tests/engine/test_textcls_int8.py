"""ONNX Runtime dynamic INT8 of the bundled MiniLM disease classifier: graph, agreement with
its parent, lineage, explanations refused, CLI verbs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from insightray.engine.textcls_int8 import quantize_text_classifier
from insightray.errors import ConfigError
from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.models.text.bert_classifier import load_classifier
from insightray.nlp.attribution import explain_text
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")

PARENT = "textcls-symptom2disease-minilm"
TEXTS = [
    "My skin is red, itchy and covered in dry scaly patches.",
    "I have been coughing for days, with a high fever and chills.",
    "I feel a burning pain in my chest after meals, and a sour taste in my mouth.",
    "My joints are swollen and stiff every morning.",
    "I keep sneezing, my nose runs and my eyes itch.",
    "I am always thirsty, I pee a lot and I have lost weight.",
]


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled classifier quantised through the CLI verb."""
    folder = tmp_path_factory.mktemp("textcls") / "int8"
    code, stdout, stderr = cli("optimize", "textcls", "--int8", "--out", str(folder))
    assert code == 0 and "+int8" in stdout, stderr
    return folder


def test_int8_classifier_is_a_fused_int8_graph_that_names_its_parent(int8: Path) -> None:
    card = load_card(int8 / "card.json")
    parent = load_card(bundled_models_dir() / PARENT / "card.json")
    assert card.lineage.method == "quantised" and card.version == f"{parent.version}+int8"
    assert card.lineage.parent_sha256 == parent.weights_sha256
    assert card.labels == parent.labels
    assert card.preprocessing.extra["quantization"] == "onnxruntime-dynamic-int8"
    graph = onnx.load(str(int8 / (card.weights_file or ""))).graph
    operators = [node.op_type for node in graph.node]
    assert operators.count("QAttention") == 6  # one fused int8 attention per MiniLM layer
    assert {"DynamicQuantizeLinear", "MatMulInteger", "SkipLayerNormalization"} <= set(operators)
    assert [output.name for output in graph.output] == ["logits"]


def test_int8_classifier_ranks_like_its_parent(int8: Path) -> None:
    parent = load_classifier(PARENT).predict_proba(TEXTS)
    quantised = load_classifier(int8).predict_proba(TEXTS)
    assert quantised.shape == parent.shape
    np.testing.assert_allclose(quantised.sum(axis=1), 1.0, atol=1e-5)
    assert (quantised.argmax(axis=1) == parent.argmax(axis=1)).all()
    assert np.abs(quantised - parent).max() < 0.25  # int8 moves a near-tie (0.73/0.27) most


def test_int8_classifier_refuses_what_needs_pytorch(int8: Path, tmp_path: Path) -> None:
    loaded = load_classifier(int8)
    with pytest.raises(ConfigError, match="no PyTorch model"):
        explain_text(loaded, TEXTS[0])
    with pytest.raises(ConfigError, match="quantised already"):
        quantize_text_classifier(int8, tmp_path / "again")


def test_analyze_verb_runs_the_int8_classifier(int8: Path, tmp_path: Path) -> None:
    code, stdout, stderr = cli("nlp", "analyze", TEXTS[0], "--model", str(int8), "--json")
    assert code == 0, stderr
    parent = load_classifier(PARENT)
    expected = parent.card.labels[int(parent.predict_proba(TEXTS[:1])[0].argmax())]
    assert json.loads(stdout)["diseases"][0]["label"] == expected
    code, stdout, stderr = cli("optimize", "textcls", "--out", str(tmp_path / "none"))
    assert code != 0 and "Pass --int8" in stderr

"""Dynamic INT8 of the bundled BiLSTM-CRF tagger: int8 weights, same entities, lineage, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from insightray.engine.ner import load_ner_model, predict_tags
from insightray.engine.ner_int8 import quantize_ner
from insightray.errors import ConfigError
from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.models.text import split_words
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")

PARENT = "ner-ncbi-bilstm-crf"
SENTENCES = [
    "Familial breast cancer is linked to BRCA1 mutations.",
    "Ataxia telangiectasia is a rare recessive disorder.",
    "The patient has type 2 diabetes and hypertension.",
    "No evidence of Duchenne muscular dystrophy was found.",
    "Myotonic dystrophy and colorectal adenomas were reported in the family.",
]


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner-int8")
    quantize_ner(PARENT, folder)
    return folder


def test_int8_tagger_has_int8_lstm_weights_and_names_its_parent(int8: Path) -> None:
    card = load_card(int8 / "card.json")
    parent = load_card(bundled_models_dir() / PARENT / "card.json")
    assert card.lineage.method == "quantised" and card.version == f"{parent.version}+int8"
    assert card.lineage.parent_sha256 == parent.weights_sha256
    assert card.preprocessing.extra["quantization"] == "torch-dynamic-int8"
    with safe_open(str(int8 / (card.weights_file or "")), "pt") as handle:
        int8_names = {k for k in handle.keys() if handle.get_tensor(k).dtype == torch.int8}  # noqa: SIM118
    assert {"lstm.weight_ih_l0.int8", "lstm.weight_hh_l0_reverse.int8"} <= int8_names
    assert "emissions.weight.int8" in int8_names
    loaded = load_ner_model(int8)
    assert type(loaded.model.lstm).__module__.startswith("torch.ao.nn.quantized.dynamic")


def test_int8_tagger_finds_the_same_entities_as_its_parent(int8: Path) -> None:
    words = [[word for word, _, _ in split_words(text)] for text in SENTENCES]
    original = predict_tags(load_ner_model(bundled_models_dir() / PARENT), words)
    quantised = predict_tags(load_ner_model(int8), words)
    assert quantised == original
    assert sum(tag.startswith("B-") for tags in original for tag in tags) >= 5


def test_quantize_ner_refuses_bad_requests(int8: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a bilstm_crf tagger"):
        quantize_ner("fracture-roboflow-lite0", tmp_path / "a")
    with pytest.raises(ConfigError, match="quantised already"):
        quantize_ner(int8, tmp_path / "b")


def test_optimize_evaluate_and_analyze_verbs_run_the_int8_tagger(
    tmp_path: Path, shared_data: Path
) -> None:
    out = tmp_path / "int8"
    code, stdout, stderr = cli("optimize", "ner", "--int8", "--out", str(out))
    assert code == 0 and "+int8" in stdout, stderr
    devel = (shared_data / "text/ner/ncbi_disease/devel.tsv").read_text().split("\n\n")[:20]
    data = tmp_path / "small.tsv"
    data.write_text("\n\n".join(devel) + "\n")
    code, stdout, stderr = cli(
        "evaluate", "ner", "--model", str(out), "--data", str(data), "--json"
    )
    assert code == 0 and '"f1"' in stdout, stderr
    code, stdout, stderr = cli(
        "nlp", "analyze", SENTENCES[0], "--ner-model", str(out), "--no-classify", "--json"
    )
    assert code == 0 and "breast cancer" in stdout, stderr
    code, _, stderr = cli("optimize", "ner", "--out", str(out))
    assert code != 0 and "--int8" in stderr

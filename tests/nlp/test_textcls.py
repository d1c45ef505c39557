"""Text classification: metrics, data, schedule, compact weights, training, CLI, bundled model.

Everything but the last test uses tiny random BERT checkpoints written into tmp_path.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from insightray.errors import ConfigError
from insightray.models import create_model, list_models
from insightray.models.catalog import bundled_models_dir
from insightray.models.text.bert_classifier import (
    BertClassifier,
    load_classifier,
    load_encoder,
    load_tokenizer,
    predict_proba,
)
from insightray.models.text.bert_weights import decode_weights, encode_weights
from insightray.training.metrics.classification import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    multilabel_report,
    per_class_f1,
    tune_thresholds,
)
from insightray.training.textcls.adapt import (
    MlmConfig,
    expand_vocabulary,
    mine_domain_terms,
    mlm_adapt,
)
from insightray.training.textcls.data import load_corpus, load_text_csv, stratified_split
from insightray.training.textcls.evaluate import evaluate_textcls, split_for_card
from insightray.training.textcls.schedule import set_trainable
from insightray.training.textcls.trainer import (
    Phase,
    TextClsConfig,
    lr_factor,
    parameter_groups,
    train_textcls,
)
from tests.nlp.bert_helpers import write_tiny_bert, write_toy_csv

FAST_PHASES = (
    Phase("head", 12, lr=0.0, head_lr=1e-2, unfreeze=0),
    Phase("top1", 2, lr=1e-3, head_lr=1e-3, unfreeze=1),
    Phase("all", 2, lr=1e-3, head_lr=1e-3, unfreeze=None, layer_decay=0.5),
)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> tuple[Path, Path]:
    """A tiny single-label model trained once for the tests below: (model folder, CSV)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_toy_csv(root / "toy.csv", per_class=14)
    config = TextClsConfig(
        encoder=str(tiny_bert),
        phases=FAST_PHASES,
        batch_size=8,
        extra_terms=("psoriasis",),
        vocab_terms=2,
        fractions=(0.6, 0.2, 0.2),
        data_licence="synthetic",
    )
    train_textcls(data, root / "model", config, log=lambda _: None)
    return root / "model", data


# ---------------------------------------------------------------- metrics


def test_metrics_by_hand() -> None:
    truth, pred = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0]
    assert confusion_matrix(truth, pred, 3).tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    assert accuracy(truth, pred) == pytest.approx(4 / 6)
    # class 0: P 1/2 R 1 -> 2/3; class 1: P 1 R 1/2 -> 2/3; class 2: P 2/3 R 2/3 -> 2/3
    np.testing.assert_allclose(per_class_f1(truth, pred, 3), [2 / 3, 2 / 3, 2 / 3])
    assert macro_f1(truth, pred) == pytest.approx(2 / 3)
    # A class never seen nor predicted is left out of the mean (scikit-learn's default).
    assert macro_f1([0, 0], [0, 0], num_classes=5) == 1.0
    report = classification_report(truth, pred, ["a", "b", "c"])
    assert report.per_class["b"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert json.loads(json.dumps(report.to_dict()))["examples"] == 6
    with pytest.raises(ConfigError):
        confusion_matrix([0, 3], [0, 0], 3)


def test_multilabel_metrics_and_thresholds() -> None:
    truth = [[1, 0], [1, 1], [0, 1], [0, 0]]
    report = multilabel_report(truth, [[1, 0], [1, 0], [0, 1], [0, 1]], ["a", "b"])
    assert report.accuracy == 0.5  # rows 1 and 3 match exactly
    assert report.per_class["a"]["f1"] == 1.0 and report.per_class["b"]["f1"] == 0.5
    assert report.micro_f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    scores = [[0.9, 0.2], [0.6, 0.3], [0.1, 0.35], [0.2, 0.1]]
    assert tune_thresholds(truth, scores) == [0.5, 0.3]  # 0.25 and 0.3 tie: nearer 0.5 wins


# ---------------------------------------------------------------- data


def test_csv_single_and_multi_label(tmp_path: Path) -> None:
    single = load_text_csv(write_toy_csv(tmp_path / "s.csv", per_class=4))
    assert not single.multi_label and single.labels == ("chest", "joint", "skin")
    multi = load_text_csv(write_toy_csv(tmp_path / "m.csv", per_class=4, multi_label=True))
    assert multi.multi_label and multi.targets.shape == (12, 3)
    assert multi.targets.sum() > 12  # some rows carry two labels
    (tmp_path / "bad.csv").write_text("text,score\nhello,7\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_text_csv(tmp_path / "bad.csv")


def test_split_is_stratified_seeded_and_keeps_duplicates_together(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    rows = [f"{c} text {i}" for c in "abcd" for i in range(10)]
    rows += ["a text 0", "A  TEXT 0", "b text 1"]  # duplicates after normalisation
    labels = [r.split()[0].lower() for r in rows]
    lines = ["text,label", *(f"{r},{lab}" for r, lab in zip(rows, labels, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_text_csv(path)
    parts = stratified_split(data, (0.6, 0.2, 0.2), seed=7)
    assert parts == stratified_split(data, (0.6, 0.2, 0.2), seed=7)
    assert parts != stratified_split(data, (0.6, 0.2, 0.2), seed=8)
    every = [*parts.train, *parts.val, *parts.test]
    assert sorted(every) == list(range(len(data)))
    for part in (parts.val, parts.test):
        assert sorted(np.bincount(data.targets[list(part)], minlength=4)) in ([2, 2, 2, 2],)
    where = {i: name for name in ("train", "val", "test") for i in getattr(parts, name)}
    copies = [i for i, t in enumerate(data.texts) if " ".join(t.lower().split()) == "a text 0"]
    assert len({where[i] for i in copies}) == 1


def test_corpus_from_text_and_medquad_style_zip(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("Short.\nAsthma is a chronic disease of the airways.\n")
    assert load_corpus(tmp_path / "c.txt") == ["Asthma is a chronic disease of the airways."]
    xml = "<Document><QAPairs><QAPair><Answer>Psoriasis is a skin disease.</Answer></QAPair>"
    with zipfile.ZipFile(tmp_path / "q.zip", "w") as archive:
        archive.writestr("1/a.xml", xml + "</QAPairs></Document>")
    assert load_corpus(tmp_path / "q.zip") == ["Psoriasis is a skin disease."]


# ---------------------------------------------------------------- schedule and layers


def test_warmup_then_cosine_with_restarts() -> None:
    factors = [lr_factor(step, 20, warmup_ratio=0.1, cycles=2) for step in range(20)]
    assert factors[:2] == [0.5, 1.0]  # 2 warm-up steps
    assert factors[2] == 1.0 and factors[11] == 1.0  # each 9-step cycle starts at the top
    assert factors[10] < 0.05 and factors[19] < 0.05  # and anneals towards zero


def test_layerwise_decay_and_freezing(tiny_bert: Path) -> None:
    model = BertClassifier(load_encoder(tiny_bert), 3)
    set_trainable(model, None)
    groups = parameter_groups(model, Phase("all", 1, 1.0, 0.5, None, layer_decay=0.5), 0.01)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"encoder0": 0.25, "encoder1": 0.5, "encoder2": 1.0, "head2": 0.5}
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    embeddings = model.encoder.get_input_embeddings().weight
    assert id(embeddings) in no_decay and id(model.head[1].bias) in no_decay
    assert id(model.head[1].weight) not in no_decay
    set_trainable(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".layer.1." in n for n in trainable)
    assert not any(".layer.0." in n or "embeddings" in n for n in trainable)
    set_trainable(model, 0)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"head"}


# ---------------------------------------------------------------- vocabulary, MLM, weights


def test_vocabulary_expansion_initialises_from_pieces(tiny_bert: Path) -> None:
    tokenizer = load_tokenizer(tiny_bert)
    encoder: Any = load_encoder(tiny_bert)
    pieces = tokenizer("psoriasis", add_special_tokens=False)["input_ids"]
    assert len(pieces) >= 3
    assert mine_domain_terms(["psoriasis and rash"] * 3, tokenizer, 5) == ["psoriasis"]
    expected = encoder.get_input_embeddings().weight[pieces].mean(dim=0).detach().clone()
    assert expand_vocabulary(encoder, tokenizer, ["psoriasis", "rash"]) == ["psoriasis"]
    new_id = tokenizer.convert_tokens_to_ids("psoriasis")
    assert tokenizer.tokenize("Psoriasis flares")[0] == "psoriasis"
    torch.testing.assert_close(encoder.get_input_embeddings().weight[new_id], expected)


def test_mlm_adaptation_trains_the_encoder(tiny_bert: Path) -> None:
    tokenizer = load_tokenizer(tiny_bert)
    encoder: Any = load_encoder(tiny_bert)
    before = encoder.encoder.layer[0].output.dense.weight.detach().clone()
    texts = ["i have a red itchy rash on my skin for days"] * 4
    losses = mlm_adapt(encoder, tokenizer, texts, MlmConfig(steps=3, batch_size=4, seed=1))
    assert len(losses) >= 1 and all(np.isfinite(losses))
    assert not torch.equal(before, encoder.encoder.layer[0].output.dense.weight)


def test_delta_weights_round_trip() -> None:
    torch.manual_seed(0)
    base = {"emb": torch.randn(50, 128), "w": torch.randn(64, 96), "b": torch.randn(64)}
    state = {k: v.clone() for k, v in base.items()}
    state["emb"] = torch.cat([state["emb"], torch.randn(2, 128)])  # two new vocabulary rows
    state["emb"][[3, 7]] += 0.01 * torch.randn(2, 128)  # two rows fine-tuned
    state["w"] += 0.001 * torch.randn(64, 96)
    state["head"] = torch.randn(3, 8)
    stored = encode_weights(state, base)
    assert "full:b" not in stored and "delta:b" not in stored  # unchanged: not stored
    assert stored["rows:emb"].tolist() == [3, 7] and stored["extra:emb"].shape == (2, 128)
    assert stored["delta:w"].dtype == torch.int8 and "full:head" in stored
    restored = decode_weights(stored, base)
    for name, value in state.items():
        change = (value[: base[name].shape[0]] - base[name]).abs().max() if name in base else 1
        tolerance = float(change) / 200 + 1e-6
        torch.testing.assert_close(restored[name], value, atol=tolerance, rtol=0)


# ---------------------------------------------------------------- training end to end


def test_registered_builder_and_bert_base_shape(tmp_path: Path) -> None:
    assert "bert-classifier" in list_models(task="text-classification")
    folder = write_tiny_bert(tmp_path / "base", hidden=768, layers=12, heads=12, weights=False)
    model = create_model("bert-classifier", num_classes=5, encoder=str(folder), pretrained=False)
    assert isinstance(model, BertClassifier) and model.num_layers == 12
    ids = torch.randint(5, 60, (2, 16))
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert logits.shape == (2, 5)
    model.loss(logits, torch.tensor([0, 4])).backward()  # type: ignore[no-untyped-call]
    assert model.encoder.encoder.layer[0].attention.self.query.weight.grad is not None
    assert model.head[-1].weight.grad is not None
    multi = BertClassifier(model.encoder, 3, pooling="cls", multi_label=True)
    loss = multi.loss(multi(input_ids=ids, attention_mask=torch.ones_like(ids)), torch.eye(3)[:2])
    assert loss.ndim == 0


def test_training_saves_a_compact_model_that_reloads(trained: tuple[Path, Path]) -> None:
    folder, data = trained
    card = json.loads((folder / "card.json").read_text())
    assert card["task"] == "text-classification" and card["labels"] == ["chest", "joint", "skin"]
    assert card["preprocessing"]["storage"] == "delta-int8"
    assert card["preprocessing"]["split"]["seed"] == 13
    assert card["preprocessing"]["added_tokens"][0] == "psoriasis"
    assert card["metrics"]["test_accuracy"] >= 0.8, card["metrics"]
    loaded = load_classifier(folder)
    dataset = load_text_csv(data)
    test = split_for_card(dataset, loaded.card, "test")
    assert len(test) == card["metrics"]["test_examples"]
    report = evaluate_textcls(loaded, test)
    assert report.accuracy == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-4)
    probs = predict_proba(loaded.model, loaded.tokenizer, ["red itchy scaly skin rash"])
    assert loaded.card.labels[int(probs.argmax())] == "skin"
    with pytest.raises(ConfigError):
        split_for_card(dataset, loaded.card, "holdout")


def test_multilabel_training_tunes_thresholds_and_full_storage(
    tmp_path: Path, tiny_bert: Path
) -> None:
    data = write_toy_csv(tmp_path / "multi.csv", per_class=8, multi_label=True)
    config = TextClsConfig(
        encoder=str(tiny_bert),
        phases=(FAST_PHASES[0], Phase("all", 1, 1e-3, 1e-3, None, 0.8)),
        batch_size=8,
        storage="full",
        fractions=(0.5, 0.25, 0.25),
    )
    result = train_textcls(data, tmp_path / "model", config, log=lambda _: None)
    assert set(result.card.thresholds.extra) == {"skin", "joint", "chest"}
    assert (tmp_path / "model" / "encoder" / "config.json").is_file()
    loaded = load_classifier(tmp_path / "model" / "card.json")
    assert loaded.model.multi_label
    report = evaluate_textcls(loaded, load_text_csv(data))
    assert 0.0 <= report.macro_f1 <= 1.0 and report.examples == 24


def test_cli_train_and_evaluate_textcls(tmp_path: Path, tiny_bert: Path) -> None:
    from insightray.cli import app

    data = write_toy_csv(tmp_path / "toy.csv", per_class=6)
    runner = CliRunner()
    trained = runner.invoke(
        app,
        [
            "train", "textcls", "--data", str(data), "--out", str(tmp_path / "m"),
            "--encoder", str(tiny_bert), "--head-epochs", "1", "--top-epochs", "1",
            "--top-layers", "1", "--all-epochs", "0", "--batch-size", "8", "--json",
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(
        app,
        ["evaluate", "textcls", "--data", str(data), "--model", str(tmp_path / "m"),
         "--split", "test", "--json"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    record = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert {"accuracy", "macro_f1", "examples", "per_class"} <= set(record)
    assert record["examples"] == 3 and record["split"] == "test"


# ---------------------------------------------------------------- the bundled model


BUNDLED = bundled_models_dir() / "textcls-symptom2disease-minilm"


@pytest.mark.skipif(not (BUNDLED / "card.json").is_file(), reason="bundled model not built")
def test_bundled_symptom2disease_model() -> None:
    from insightray.nlp.classifier import DiseaseClassifier

    size = sum(p.stat().st_size for p in BUNDLED.rglob("*") if p.is_file())
    assert size < 15 * 2**20
    classifier = DiseaseClassifier.load()  # checks both SHA-256 sums
    card = classifier.card
    assert len(card.labels) == 24 and card.data_licence == "none stated (Kaggle dataset)"
    assert card.metrics["test_accuracy"] >= 0.9 and card.metrics["test_macro_f1"] >= 0.9
    ranked = classifier.rank(
        "My skin has red, itchy patches covered in silvery scales on my elbows and scalp.", 3
    )
    assert ranked[0][0] == "Psoriasis" and len(ranked) == 3
    assert ranked[0][1] >= ranked[1][1] >= ranked[2][1]
    assert classifier.decide("I keep sneezing, my nose is runny and my throat is sore.") == [
        "Common Cold"
    ]

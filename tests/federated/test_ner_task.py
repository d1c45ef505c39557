"""Federated NER: the trainer's local epochs, the corpus split, and two real rounds.

The two-round test runs the real deployment engine (a SuperLink and two SuperNodes on
loopback) on a few dozen NCBI-disease sentences, then scores the model folder it wrote with
``insightray evaluate ner``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import site_folders
from insightray.federated.tasks import get_task
from insightray.federated.tasks.ner import COORDINATOR_FOLDER
from insightray.models.text.ner_encoding import NerEncoder, NerVocab
from insightray.training.ner.conll import read_conll, write_conll
from insightray.training.ner.trainer import NerTrainConfig, build_tagger, train_local_epochs
from tests.test_cli import run_cli

SIZES = {"train.tsv": 60, "devel.tsv": 40, "test.tsv": 30}


@pytest.fixture(scope="module")
def tiny_corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first sentences of each NCBI-disease split, in a corpus folder of their own."""
    source = shared_data / "text" / "ner" / "ncbi_disease"
    if not source.is_dir():
        pytest.skip("ncbi_disease not in the shared data")
    root = tmp_path_factory.mktemp("ner_corpus")
    for name, count in SIZES.items():
        write_conll(read_conll(source / name)[:count], root / name)
    return root


def _distance(model: torch.nn.Module, start: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return float(
            sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), start, strict=True))
        )


def test_local_epochs_train_from_given_weights_and_fedprox_holds_them_closer(
    tiny_corpus: Path,
) -> None:
    sentences = read_conll(tiny_corpus / "train.tsv")[:24]
    vocab = NerVocab.build(read_conll(tiny_corpus / "devel.tsv"), pieces=False)
    config = NerTrainConfig(
        batch_size=8, lr=1e-2, word_dim=16, hidden=16, char_filters=8, piece_dim=0, progress=False
    )
    drift = {}
    for mu in (0.0, 10.0):
        torch.manual_seed(0)
        tagger = build_tagger(vocab, config)
        start = [p.detach().clone() for p in tagger.model.parameters()]
        fit = train_local_epochs(
            tagger.model, NerEncoder(vocab), sentences, config, epochs=2, proximal_mu=mu
        )
        assert (fit.steps, fit.sentences) == (6, 24) and fit.loss > 0
        drift[mu] = _distance(tagger.model, start)
    assert drift[0.0] > 0 and drift[10.0] < drift[0.0]


def test_ner_split_deals_contiguous_blocks_and_keeps_devel_for_the_coordinator(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    task = get_task("ner")
    task.split(tiny_corpus, 3, tmp_path / "sites", label_skew=0.5, size_skew=0.5, seed=0)
    folders = site_folders(tmp_path / "sites")
    blocks = [read_conll(folder / "train.tsv") for folder in folders]
    assert [s for block in blocks for s in block] == read_conll(tiny_corpus / "train.tsv")
    assert len(blocks[0]) > len(blocks[1]) > len(blocks[2])
    devel, test = task.evaluation_data(tmp_path / "sites")
    assert devel == tmp_path / "sites" / COORDINATOR_FOLDER / "devel.tsv"
    assert test is not None and len(read_conll(test)) == SIZES["test.tsv"]


@pytest.mark.slow
def test_two_federated_rounds_write_a_tagger_evaluate_ner_scores(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    from insightray.federated.simulation import simulate

    settings = FederatedSettings(task="ner", rounds=2, lr=1e-2, batch_size=8, local_epochs=2)
    result = simulate(tiny_corpus, settings, sites=2, out=tmp_path / "run", log=lambda _: None)
    rounds = result.rounds
    assert [r["replies"] for r in rounds["rounds"]] == [2, 2]
    assert all(0.0 <= r["eval_f1"] <= 1.0 for r in rounds["rounds"])
    assert rounds["metric"] == "f1" and rounds["initial_eval_f1"] is not None
    card = json.loads(result.card_path.read_text())
    assert card["task"] == "ner" and card["lineage"]["method"] == "federated"
    assert card["lineage"]["settings"]["sites"] == 2
    done = run_cli(
        "evaluate",
        "ner",
        "--model",
        str(result.card_path.parent),
        "--data",
        str(tiny_corpus / "test.tsv"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    assert result.test is not None
    assert scored["f1"] == pytest.approx(result.test["f1"], abs=1e-6)
    assert scored["f1"] > 0.0  # two rounds on 60 sentences already find some diseases

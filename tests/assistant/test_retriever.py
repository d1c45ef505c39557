"""The fine-tuned retriever: a one-step fine-tune writes a small folder whose int8 deltas give
back the fine-tuned vectors, an index follows its encoder (rebuilt when it changes, refused
when questions would be encoded by another), and clear errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from insightray.assistant.chat import Assistant, AssistantConfig
from insightray.assistant.embeddings import Embedder, default_model_path
from insightray.assistant.index import KnowledgeIndex, load_index, open_index
from insightray.assistant.knowledge import read_knowledge
from insightray.assistant.onnx_encoder import ENCODER_RECIPE
from insightray.assistant.retriever_model import WEIGHTS_FILE, save_retriever
from insightray.cli.common import app
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.card import load_card
from insightray.training.retriever import (
    RetrieverTrainConfig,
    document_split,
    fine_tune_retriever,
)
from tests.assistant.conftest import SMALL

TEXTS = [
    "What causes gout?",
    "Gout is caused by uric acid crystals that build up in a joint.",
    "my son has had a rash and fever for 2 days what should i do",
]


@pytest.fixture(scope="module")
def tuned(
    small_zip: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, torch.Tensor], Path]:
    """One step on 24 pairs, saved; the full-precision state kept for comparison."""
    config = RetrieverTrainConfig(
        max_pairs=24, batch_size=24, eval_pairs=16, evals=1, max_length=64, lr=1e-4
    )
    state, card = fine_tune_retriever(small_zip, config, progress=False)
    folder = tmp_path_factory.mktemp("retriever") / "model"
    save_retriever(state, folder, card, default_model_path())
    return folder, state, tmp_path_factory.mktemp("encoders")


def _full_precision(state: dict[str, torch.Tensor]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    model.max_seq_length = SMALL.embedder.max_length
    model[0].auto_model.load_state_dict(state)
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True))


def test_a_tiny_fine_tune_writes_a_small_folder_that_gives_back_its_vectors(
    tuned: tuple[Path, dict[str, torch.Tensor], Path], embedder: Embedder
) -> None:
    folder, state, cache = tuned
    card = load_card(folder / "card.json")
    assert card.task == "sentence-embedding" and card.data_licence == "CC BY 4.0"
    assert card.preprocessing.extra["storage"] == "delta-int8"
    assert card.metrics["train_pairs"] == 24 and "test_mrr@10_packaged" in card.metrics
    assert (folder / WEIGHTS_FILE).stat().st_size < 15_000_000
    loaded = Embedder(replace(SMALL.embedder, model_path=folder, cache_dir=cache))
    assert loaded.retriever == folder and loaded.model_path.parent == cache
    vectors = loaded.encode(TEXTS)
    reference = _full_precision(state)
    packaged = embedder.encode(TEXTS)
    assert (vectors * reference).sum(1).min() > 0.9999
    moved = 1.0 - (reference * packaged).sum(1)
    assert moved.max() > 10 * (1.0 - (vectors * reference).sum(1)).max(), "training moved it"
    assert loaded.sha256() != embedder.sha256()
    again = Embedder(replace(SMALL.embedder, model_path=folder, cache_dir=cache))
    assert again.model_path == loaded.model_path and again.sha256() == loaded.sha256()


def test_the_split_keeps_every_document_whole(small_zip: Path) -> None:
    splits: dict[tuple[str, str], set[str]] = {}
    for pair in read_knowledge(small_zip):
        splits.setdefault((pair.source, pair.document_id), set()).add(document_split(pair))
    assert all(len(found) == 1 for found in splits.values())
    assert {"train", "val", "test"} <= set().union(*splits.values())


def test_an_index_follows_its_encoder(
    tuned: tuple[Path, dict[str, torch.Tensor], Path],
    small_index: KnowledgeIndex,
    small_zip: Path,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    folder, _, cache = tuned
    copy = tmp_path / "index"
    shutil.copytree(small_index.folder, copy)
    config = replace(SMALL, embedder=replace(SMALL.embedder, model_path=folder, cache_dir=cache))
    index, built = open_index([small_zip], copy, config, progress=False)
    assert built and index.manifest["reused"] == 0, "packaged vectors are never reused"
    assert index.manifest["retriever"] == str(folder)
    assert index.manifest["model"]["sha256"] != small_index.manifest["model"]["sha256"]
    assert not open_index([small_zip], copy, config, progress=False)[1], "up to date"
    assistant = Assistant(AssistantConfig(index_dir=copy, embedder=config.embedder),
                          index=index, embedder=embedder)  # fmt: skip
    assert assistant.query_embedder.retriever == folder
    assert assistant.query_embedder is not assistant.embedder  # intents: packaged vectors
    assert assistant.ask("What causes Paget disease of bone?").intent.primary
    plain = Assistant(AssistantConfig(index_dir=small_index.folder, embedder=SMALL.embedder),
                      index=small_index, embedder=embedder)  # fmt: skip
    assert plain.query_embedder is plain.embedder
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    (copy / "manifest.json").write_text(json.dumps({**manifest, "retriever": None}))
    with pytest.raises(ConfigError, match="another encoder"):
        Assistant(AssistantConfig(index_dir=copy), index=load_index(copy), embedder=embedder)


def test_cli_says_what_is_missing(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["train", "retriever", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]
    )
    assert isinstance(result.exception, InputNotFoundError)
    assert "no such MedQuAD zip or folder" in str(result.exception)
    result = runner.invoke(app, ["index", "build", "--retriever", str(tmp_path), "--index",
                                 str(tmp_path / "index")])  # fmt: skip
    assert isinstance(result.exception, InputNotFoundError)
    assert "not a retriever folder" in str(result.exception)
    help_text = runner.invoke(app, ["train", "retriever", "--help"]).output
    assert "--max-pairs" in help_text and "MedQuAD" in help_text


@pytest.mark.slow  # an ONNX export and INT8 quantisation: about a minute on a busy core
def test_the_onnx_int8_export_runs_the_fine_tuned_weights(
    tuned: tuple[Path, dict[str, torch.Tensor], Path],
) -> None:
    folder, state, cache = tuned
    int8 = Embedder(replace(SMALL.embedder, model_path=folder, backend="onnx-int8",
                            cache_dir=cache))  # fmt: skip
    vectors = int8.encode(TEXTS)
    assert (vectors * _full_precision(state)).sum(1).min() > 0.98
    assert [p.name for p in cache.glob("*-int8.onnx")] == [
        f"{int8.sha256()[:16]}-{ENCODER_RECIPE}-int8.onnx"
    ]

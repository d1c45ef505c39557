"""The persisted index: reuse by checksum, fast loads, rebuilds on change; hybrid retrieval."""

from __future__ import annotations

import json
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.index import KnowledgeIndex, load_index, open_index
from insightray.assistant.liveqa import read_liveqa
from insightray.assistant.retrieval import BM25Index, DenseIndex
from tests.assistant.conftest import SMALL

#: Real LiveQA consumer questions (by id) and the focus their answer must have.
REAL_QUESTIONS = {
    "1:Q78": "Psoriasis",
    "1:Q161": "Glaucoma",
    "2:206.0": "Shingles",
    "1:Q129": "Kidney Stones",
    "1:Q19": "Migraine",
    "1:Q101": "Lupus",
}


def test_index_holds_about_200_pairs(small_index: KnowledgeIndex) -> None:
    manifest = small_index.manifest
    assert 150 <= manifest["pairs"] <= 250
    assert manifest["passages"] == len(small_index.passages) == len(small_index.dense)
    assert manifest["model"]["sha256"] and manifest["inputs"][0]["sha256"]
    vectors = small_index.dense.vectors
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_second_open_reuses_the_index_and_loads_fast(
    small_index: KnowledgeIndex, small_zip: Path, embedder: Embedder
) -> None:
    started = time.perf_counter()
    index, built = open_index([small_zip], small_index.folder, SMALL, embedder=embedder)
    elapsed = time.perf_counter() - started
    assert not built
    assert elapsed < 1.0
    assert [p.passage_id for p in index.passages] == [p.passage_id for p in small_index.passages]
    assert np.array_equal(index.dense.vectors, small_index.dense.vectors)


def test_changed_input_rebuilds_and_reuses_unchanged_vectors(
    small_index: KnowledgeIndex, small_zip: Path, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "index"
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(small_zip) as source, zipfile.ZipFile(changed, "w") as target:
        names = source.namelist()
        for name in names[1:]:  # one document fewer
            target.writestr(name, source.read(name))
    shutil.copytree(small_index.folder, folder)
    first, built = open_index([small_zip], folder, SMALL, embedder=embedder, progress=False)
    assert not built
    second, rebuilt = open_index([changed], folder, SMALL, embedder=embedder, progress=False)
    assert rebuilt
    assert second.manifest["fingerprint"] != first.manifest["fingerprint"]
    assert second.manifest["embedded"] == 0, "every remaining passage was embedded before"
    assert second.manifest["reused"] == len(second.passages) < len(first.passages)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fingerprint"] == second.manifest["fingerprint"]
    assert not list(tmp_path.glob(".index.*")), "no staging folders left behind"


def test_load_index_without_one_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="insightray index build"):
        load_index(tmp_path / "nothing")


@pytest.mark.parametrize("question_id", sorted(REAL_QUESTIONS))
def test_hybrid_retrieval_finds_the_document_of_real_questions(
    small_index: KnowledgeIndex, embedder: Embedder, shared_data: Path, question_id: str
) -> None:
    question = next(q for q in read_liveqa() if q.question_id == question_id)
    hits = small_index.retriever(embedder).search(question.text, 5)
    assert len(hits) == 5
    assert hits[0].passage.focus == REAL_QUESTIONS[question_id]
    assert [hit.rank for hit in hits] == [1, 2, 3, 4, 5]
    assert hits[0].score >= hits[-1].score
    record = hits[0].to_dict()
    assert {"source", "document_id", "qa_id", "url", "focus", "qtype", "text", "score"} <= set(
        record
    )


def test_each_retriever_alone_and_fused(small_index: KnowledgeIndex, embedder: Embedder) -> None:
    retriever = small_index.retriever(embedder)
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("What are the symptoms of shingles?", 3, mode=mode)  # type: ignore[arg-type]
        assert hits[0].passage.focus == "Shingles", mode
    answers = {(h.passage.document_id, h.passage.qa_id) for h in retriever.search("gout", 10)}
    assert len(answers) == 10, "one hit per answer"


def test_hnsw_and_numpy_search_agree_with_flat(small_index: KnowledgeIndex) -> None:
    vectors = small_index.dense.vectors
    query = vectors[7]
    flat_ids, _ = DenseIndex(vectors, "flat").search(query, 5)
    hnsw_ids, _ = DenseIndex(vectors, "hnsw", hnsw_m=16).search(query, 5)
    assert flat_ids[0] == hnsw_ids[0] == 7
    assert len(set(flat_ids) & set(hnsw_ids)) >= 4


def test_bm25_prefers_rare_terms_and_round_trips(tmp_path: Path) -> None:
    bm25 = BM25Index.build([["gout", "pain"], ["pain", "pain"], ["flu", "fever"]])
    assert bm25.search(["gout", "pain"], 3)[0].tolist() == [0, 1]
    bm25.save(tmp_path)
    again = BM25Index.load(tmp_path)
    assert np.allclose(again.scores(["pain"]), bm25.scores(["pain"]))


def test_numpy_search_without_faiss(
    small_index: KnowledgeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = small_index.dense.vectors
    expected_ids, expected = DenseIndex(vectors, "flat").search(vectors[3], 5)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now fails
    ids, scores = DenseIndex(vectors, "flat").search(vectors[3], 5)
    assert ids.tolist() == expected_ids.tolist()
    assert np.allclose(scores, expected, atol=1e-5)


def test_both_embedding_backends_give_the_same_vectors(embedder: Embedder) -> None:
    pytest.importorskip("sentence_transformers")
    texts = ["What causes gout?", "Shingles is a painful rash caused by the chickenpox virus."]
    plain = Embedder(EmbedderConfig(backend="transformers", max_length=64)).encode(texts)
    assert embedder.backend == "sentence-transformers"
    assert np.allclose(embedder.encode(texts), plain, atol=1e-5)

"""Knowledge sources: MedQuAD from its zip, folders of documents, CSV, LiveQA; chunking."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from insightray.assistant.knowledge import (
    ChunkConfig,
    QAPair,
    chunk_pair,
    read_csv,
    read_knowledge,
    read_medquad,
)
from insightray.assistant.liveqa import read_liveqa
from insightray.errors import ConfigError, InputNotFoundError


def test_medquad_has_16407_answered_pairs(medquad_zip: Path) -> None:
    pairs = list(read_medquad(medquad_zip))
    assert len(pairs) == 16_407
    first = pairs[0]
    assert first.source and first.document_id and first.qa_id and first.url.startswith("http")
    assert first.focus and first.qtype and first.question and first.answer
    keys = {(p.source, p.document_id, p.qa_id) for p in pairs}
    assert len(keys) == len(pairs), "source + document + pid must identify a pair"
    assert {p.source for p in pairs} >= {"GHR", "GARD", "CancerGov", "NIDDK", "MPlusHealthTopics"}


def test_liveqa_questions_have_focus_and_type(shared_data: Path) -> None:
    questions = read_liveqa(shared_data / "text" / "qa" / "liveqa_train")
    assert len(questions) == 446
    assert questions[0].subquestions[0].focus == "cardiac amyloidosis"
    assert all(sub.qtype for q in questions for sub in q.subquestions)


def test_folder_of_text_markdown_and_xml(tmp_path: Path) -> None:
    (tmp_path / "gout.md").write_text("# Gout\n\nGout is a form of arthritis.\n", "utf-8")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "flu.txt").write_text("Flu spreads by droplets.", "utf-8")
    (tmp_path / "page.xml").write_text("<page><p>Rest helps.</p></page>", "utf-8")
    pairs = list(read_knowledge(tmp_path))
    assert [(p.document_id, p.focus) for p in pairs] == [
        ("gout", "Gout"),
        ("notes/flu", "flu"),
        ("page", "page"),
    ]
    assert pairs[0].answer == "# Gout Gout is a form of arthritis."


def test_csv_with_and_without_header(tmp_path: Path, shared_data: Path) -> None:
    with_header = tmp_path / "faq.csv"
    with_header.write_text("id,topic,question,answer,url\n7,Gout,Why?,Uric acid.,https://x\n")
    pair = next(read_csv(with_header))
    assert (pair.document_id, pair.focus, pair.question, pair.answer, pair.url) == (
        "7", "Gout", "Why?", "Uric acid.", "https://x",
    )  # fmt: skip
    descriptions = shared_data / "text" / "classification" / "disease_symptom"
    rows = list(read_csv(descriptions / "symptom_Description.csv"))
    assert len(rows) == 41
    assert rows[1].focus == "Malaria" and rows[1].answer.startswith("An infectious disease")


def test_unknown_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        read_knowledge(tmp_path / "missing.zip")
    odd = tmp_path / "data.bin"
    odd.write_bytes(b"\0")
    with pytest.raises(ConfigError):
        read_knowledge(odd)


def test_chunks_overlap_keep_metadata_and_are_slices_of_the_answer() -> None:
    sentences = [f"Sentence number {i} says something about gout." for i in range(30)]
    pair = QAPair(
        "GHR", "0000042", "3", "https://u", "Gout", "treatment", "How?", " ".join(sentences)
    )
    chunks = chunk_pair(pair, ChunkConfig(max_words=40, overlap_words=10))
    assert len(chunks) > 5
    for number, chunk in enumerate(chunks):
        assert chunk.text in pair.answer
        assert len(chunk.text.split()) <= 40
        assert (chunk.document_id, chunk.qa_id, chunk.url, chunk.focus, chunk.chunk) == (
            "0000042", "3", "https://u", "Gout", number,
        )  # fmt: skip
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.text.split(". ")[0]
        assert first_sentence in before.text, "consecutive chunks overlap"
        assert not before.text.startswith(first_sentence), "and move forward"
    assert chunks[-1].text.endswith(sentences[-1])

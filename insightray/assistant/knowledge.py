"""Knowledge for the assistant: question-answer pairs and the passages cut from them.

Sources: MedQuAD read straight from its zip (only pairs with answer text), any folder of
``.txt`` / ``.md`` / ``.xml`` files (MedQuAD-style XML keeps its question pairs, other files
become one document each), or a CSV (first column the topic, the others the text, unless a
header names ``question`` / ``answer`` / ``text`` / ``focus`` / ``url`` columns). Long answers
are cut into overlapping chunks of whole sentences; each :class:`Passage` keeps the metadata
of its pair, and its text is an exact slice of the (whitespace-normalised) answer.

Example:
    >>> pair = QAPair("GHR", "0000001", "1", "https://x", "Flu", "information",
    ...               "What is flu?", "Flu is an infection. It spreads fast.")
    >>> [p.text for p in chunk_pair(pair, ChunkConfig(max_words=5, overlap_words=0))]
    ['Flu is an infection.', 'It spreads fast.']
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from insightray.assistant.text import normalize_space, sentence_spans
from insightray.config import data_root
from insightray.errors import ConfigError, CorruptFileError, InputNotFoundError

__all__ = [
    "ChunkConfig",
    "Passage",
    "QAPair",
    "chunk_pair",
    "chunk_pairs",
    "default_knowledge_path",
    "read_csv",
    "read_folder",
    "read_knowledge",
    "read_medquad",
]

_TEXT_SUFFIXES = (".txt", ".md", ".markdown")
_WORDS = re.compile(r"\S+")
_CSV_COLUMNS = {
    "focus": ("focus", "topic", "title", "disease", "name"),
    "question": ("question", "query"),
    "answer": ("answer", "text", "description", "content", "body"),
    "url": ("url", "link", "source_url"),
    "document_id": ("id", "document_id", "doc_id"),
    "qtype": ("qtype", "type", "question_type"),
}


@dataclass(frozen=True)
class QAPair:
    """One question with its answer and where it comes from.

    Attributes:
        source: The collection, e.g. ``"GHR"`` (MedQuAD's ``source``), or a file name.
        document_id: The document, e.g. ``"0000001"`` (MedQuAD: the XML file's name, which
            is unique where the ``id`` attribute is not).
        qa_id: The pair within the document (MedQuAD's ``pid``).
        url: Where the text was published.
        focus: The disease or topic the document is about.
        qtype: The question type, e.g. ``"treatment"``.
        question: The question text.
        answer: The answer text (whitespace normalised).
        synonyms: Other names of the focus.
    """

    source: str
    document_id: str
    qa_id: str
    url: str
    focus: str
    qtype: str
    question: str
    answer: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Passage:
    """A chunk of an answer, searchable on its own, with its pair's metadata.

    ``text`` is ``answer[start:end]`` of the normalised answer of its pair.
    """

    passage_id: str
    source: str
    document_id: str
    qa_id: str
    url: str
    focus: str
    qtype: str
    question: str
    text: str
    chunk: int = 0
    synonyms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        data = asdict(self)
        data["synonyms"] = list(self.synonyms)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Passage:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "synonyms": tuple(data.get("synonyms", ()))})


@dataclass(frozen=True)
class ChunkConfig:
    """How answers are cut into passages.

    Attributes:
        max_words: Most words in a passage (a single longer sentence is cut by words).
        overlap_words: Words of context repeated from the end of the previous chunk
            (whole sentences, at least this many when the sentences allow).
    """

    max_words: int = 150
    overlap_words: int = 30

    def __post_init__(self) -> None:
        if self.max_words < 1 or not 0 <= self.overlap_words < self.max_words:
            raise ConfigError(
                "chunking",
                f"max_words={self.max_words}, overlap_words={self.overlap_words} do not fit",
                "use max_words >= 1 and 0 <= overlap_words < max_words",
            )


def default_knowledge_path() -> Path:
    """MedQuAD in the shared data folder: ``data_root()/text/qa/medquad.zip``."""
    return data_root() / "text" / "qa" / "medquad.zip"


def read_knowledge(path: str | Path) -> Iterator[QAPair]:
    """Question-answer pairs from a MedQuAD zip, a folder of documents or a CSV.

    Raises:
        InputNotFoundError: ``path`` does not exist.
        ConfigError: It is a file of another kind.
    """
    source = Path(path)
    if not source.exists():
        raise InputNotFoundError(str(source), "no such file or folder", "check the --data path")
    if source.is_dir():
        return read_folder(source)
    suffix = source.suffix.lower()
    if suffix == ".zip":
        return read_medquad(source)
    if suffix == ".csv":
        return read_csv(source)
    if suffix in (*_TEXT_SUFFIXES, ".xml"):
        return _read_file(source, source.parent)
    raise ConfigError(str(source), "not a knowledge source", "give a .zip, .csv or a folder")


def read_medquad(path: str | Path, *, answered_only: bool = True) -> Iterator[QAPair]:
    """MedQuAD pairs straight from its zip, in archive order.

    Args:
        path: ``medquad.zip``.
        answered_only: Skip pairs whose answer was removed upstream (16,407 of 47,441 have
            text).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise CorruptFileError(str(path), "not a readable zip", "download it again") from error
    with archive:
        for name in archive.namelist():
            if name.lower().endswith(".xml"):
                yield from _medquad_document(archive.read(name), name, answered_only)


def _medquad_document(raw: bytes, name: str, answered_only: bool) -> Iterator[QAPair]:
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as error:
        raise CorruptFileError(name, f"invalid XML ({error})", "check the file") from error
    member = PurePosixPath(name)
    folder = member.parent.name
    source = root.get("source") or folder or member.stem
    focus = normalize_space(root.findtext("Focus") or "")
    synonyms = tuple(normalize_space(s.text or "") for s in root.iter("Synonym") if s.text)
    for pair in root.iter("QAPair"):
        answer = normalize_space(pair.findtext("Answer") or "")
        if answered_only and not answer:
            continue
        question = pair.find("Question")
        yield QAPair(
            source=source,
            document_id=member.stem,
            qa_id=pair.get("pid", ""),
            url=root.get("url", ""),
            focus=focus,
            qtype=(question.get("qtype", "") if question is not None else "").lower(),
            question=normalize_space(question.text or "") if question is not None else "",
            answer=answer,
            synonyms=synonyms,
        )


def read_folder(path: str | Path) -> Iterator[QAPair]:
    """Every ``.txt``, ``.md``, ``.xml`` and ``.csv`` file below ``path``, sorted by path."""
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = file.suffix.lower()
        if suffix == ".csv":
            yield from read_csv(file)
        elif suffix in (*_TEXT_SUFFIXES, ".xml"):
            yield from _read_file(file, root)


def _read_file(file: Path, root: Path) -> Iterator[QAPair]:
    raw = file.read_bytes()
    relative = file.relative_to(root).with_suffix("").as_posix()
    if file.suffix.lower() == ".xml":
        try:
            element = ET.fromstring(raw)
        except ET.ParseError as error:
            raise CorruptFileError(str(file), f"invalid XML ({error})", "fix it") from error
        if element.find(".//QAPair") is not None:
            yield from _medquad_document(raw, relative + ".xml", answered_only=True)
            return
        text, title = " ".join(element.itertext()), ""
    else:
        text = raw.decode("utf-8", errors="replace")
        title = next(
            (line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")), ""
        )
    body = normalize_space(text)
    if body:
        focus = title or file.stem.replace("_", " ").replace("-", " ")
        url = file.resolve().as_uri()
        yield QAPair(file.name, relative, "1", url, focus, "information", f"What is {focus}?", body)


def read_csv(path: str | Path, *, qtype: str = "information") -> Iterator[QAPair]:
    """Rows of a CSV as pairs.

    With a header naming known columns (``focus``/``topic``/``disease``, ``question``,
    ``answer``/``text``/``description``, ``url``, ``id``, ``qtype``) those are used; without
    one, the first column is the topic and the other non-empty cells, joined, the text.

    Example:
        A headerless ``symptom_Description.csv`` row ``Malaria,An infectious disease ...``
        becomes focus ``Malaria`` with that description as its answer.
    """
    file = Path(path)
    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        return
    header = [cell.strip().lower() for cell in rows[0]]
    columns = {
        key: next((header.index(name) for name in names if name in header), None)
        for key, names in _CSV_COLUMNS.items()
    }
    has_header = columns["answer"] is not None
    for number, row in enumerate(rows[1:] if has_header else rows, start=1):
        cells = [normalize_space(cell) for cell in row]

        def cell(key: str, cells: list[str] = cells) -> str:
            index = columns[key]
            return cells[index] if index is not None and index < len(cells) else ""

        if has_header:
            answer, focus = cell("answer"), cell("focus")
        else:
            focus = cells[0]
            answer = ", ".join(c.replace("_", " ") for c in cells[1:] if c)
        if not answer:
            continue
        focus = focus or file.stem
        yield QAPair(
            source=file.name,
            document_id=cell("document_id") or f"{file.stem}-{number}",
            qa_id="1",
            url=cell("url") or file.resolve().as_uri(),
            focus=focus,
            qtype=(cell("qtype") or qtype).lower(),
            question=cell("question") or f"What is {focus}?",
            answer=answer,
        )


def chunk_pair(pair: QAPair, config: ChunkConfig | None = None) -> list[Passage]:
    """Cut ``pair``'s answer into overlapping passages of whole sentences.

    Example:
        >>> pair = QAPair("s", "d", "1", "", "f", "information", "q?", "A b. C d. E f.")
        >>> [p.text for p in chunk_pair(pair, ChunkConfig(max_words=4, overlap_words=2))]
        ['A b. C d.', 'C d. E f.']
    """
    config = config or ChunkConfig()
    spans = _pieces(pair.answer, config.max_words)
    chunks: list[tuple[int, int]] = []
    first = 0
    while first < len(spans):
        last, words = first, 0
        while last < len(spans) and (last == first or words + spans[last][2] <= config.max_words):
            words += spans[last][2]
            last += 1
        chunks.append((spans[first][0], spans[last - 1][1]))
        if last == len(spans):
            break
        back, overlap = last, 0
        while back - 1 > first and overlap < config.overlap_words:
            back -= 1
            overlap += spans[back][2]
        if overlap > config.max_words // 2:  # never repeat more than half a chunk
            back = last
        first = back
    return [
        Passage(
            passage_id=f"{pair.source}/{pair.document_id}/{pair.qa_id}#{number}",
            source=pair.source,
            document_id=pair.document_id,
            qa_id=pair.qa_id,
            url=pair.url,
            focus=pair.focus,
            qtype=pair.qtype,
            question=pair.question,
            text=pair.answer[start:end],
            chunk=number,
            synonyms=pair.synonyms,
        )
        for number, (start, end) in enumerate(chunks)
    ]


def _pieces(text: str, max_words: int) -> list[tuple[int, int, int]]:
    """Sentence spans ``(start, end, words)``; sentences longer than ``max_words`` are cut."""
    pieces: list[tuple[int, int, int]] = []
    for start, end in sentence_spans(text) or [(0, len(text))]:
        words = [(w.start(), w.end()) for w in _WORDS.finditer(text, start, end)]
        for index in range(0, len(words), max_words):
            group = words[index : index + max_words]
            if group:
                pieces.append((start if index == 0 else group[0][0], group[-1][1], len(group)))
    return pieces


def chunk_pairs(pairs: Iterable[QAPair], config: ChunkConfig | None = None) -> list[Passage]:
    """:func:`chunk_pair` over many pairs; passage ids stay unique."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for pair in pairs:
        for passage in chunk_pair(pair, config):
            if passage.passage_id in seen:
                raise ConfigError(
                    passage.passage_id, "two passages share this id", "give documents unique ids"
                )
            seen.add(passage.passage_id)
            passages.append(passage)
    return passages

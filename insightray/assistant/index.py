"""The persisted knowledge index: passages, their vectors and BM25, built once.

An index folder holds ``manifest.json`` (a fingerprint of the inputs' SHA-256, the
embedding model's SHA-256 and the settings; the model is the packaged MiniLM or a fine-tuned
retriever, whose folder the manifest names so that questions are encoded by the same model),
``passages.json``, ``vectors.npy`` (plus ``hnsw.faiss`` for HNSW), ``bm25.npz`` and
``bm25-vocabulary.json``. :func:`open_index` loads it when the fingerprint still matches and
rebuilds it otherwise; a rebuild re-embeds only passages whose text changed (vectors of
unchanged ones are reused). Folders are replaced atomically. The default place is
``$INSIGHTRAY_HOME/index`` (default ``$XDG_DATA_HOME/insightray`` or
``~/.local/share/insightray``), created on first use.

Example:
    >>> index, built = open_index([default_knowledge_path()])  # doctest: +SKIP
    >>> index.retriever().search("What causes gout?", 3)[0].passage.focus  # doctest: +SKIP
    'Gout'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from insightray.assistant.embeddings import Embedder, EmbedderConfig, Vectors, file_sha256
from insightray.assistant.knowledge import (
    ChunkConfig,
    Passage,
    QAPair,
    chunk_pairs,
    default_knowledge_path,
    read_knowledge,
)
from insightray.assistant.retrieval import (
    BM25Index,
    DenseIndex,
    Retriever,
    RetrieverConfig,
    bm25_text,
)
from insightray.assistant.text import terms
from insightray.config import insightray_home
from insightray.errors import ConfigError, InputNotFoundError

log = logging.getLogger(__name__)

__all__ = [
    "INDEX_FORMAT",
    "IndexConfig",
    "KnowledgeIndex",
    "build_index",
    "default_index_dir",
    "embed_text",
    "fingerprint",
    "load_index",
    "open_index",
]

#: Bump when the folder layout or what gets embedded changes: old indexes then rebuild.
INDEX_FORMAT = 1
MANIFEST = "manifest.json"
_SOURCE_SUFFIXES = (".txt", ".md", ".markdown", ".xml", ".csv")


def default_index_dir() -> Path:
    """``$INSIGHTRAY_INDEX`` if set, else ``insightray_home() / "index"``."""
    configured = os.environ.get("INSIGHTRAY_INDEX")
    return Path(configured).expanduser() if configured else insightray_home() / "index"


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built.

    Attributes:
        chunk: Passage size and overlap.
        dense: ``"flat"`` (exact), ``"hnsw"`` or ``"auto"`` (HNSW from ``hnsw_from`` passages).
        hnsw_from: Passage count from which ``"auto"`` picks HNSW.
        hnsw_m: HNSW graph degree.
        embedder: The passage encoder (default ONNX Runtime INT8, which retrieves as well as
            the PyTorch model and builds several times faster: bench_index_encoder.py). Its
            ``model_path`` may name a fine-tuned retriever (``insightray train retriever``);
            the assistant then encodes questions with that model too (the intent head keeps
            the packaged one).
    """

    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    dense: Literal["auto", "flat", "hnsw"] = "auto"
    hnsw_from: int = 200_000
    hnsw_m: int = 32
    embedder: EmbedderConfig = field(default_factory=lambda: EmbedderConfig(backend="onnx-int8"))

    def dense_kind(self, passages: int) -> Literal["flat", "hnsw"]:
        """The dense index kind for a collection of ``passages``."""
        if self.dense == "auto":
            return "hnsw" if passages >= self.hnsw_from else "flat"
        return self.dense


def embed_text(passage: Passage) -> str:
    """What gets embedded for a passage: its question, then its text."""
    return f"{passage.question} {passage.text}"


@dataclass
class KnowledgeIndex:
    """A loaded index: passages with their dense and BM25 indexes and the manifest."""

    folder: Path
    passages: list[Passage]
    dense: DenseIndex
    bm25: BM25Index
    manifest: dict[str, Any]

    def retriever(
        self, embedder: Embedder | None = None, config: RetrieverConfig | None = None
    ) -> Retriever:
        """A :class:`Retriever` over this index (a new embedder unless one is given)."""
        return Retriever(self.passages, self.dense, self.bm25, embedder or Embedder(), config)


def _input_checksum(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if file.suffix.lower() in _SOURCE_SUFFIXES:
                relative = file.relative_to(path).as_posix()
                digest.update(f"{relative}\0{file_sha256(file)}\n".encode())
        return digest.hexdigest()
    raise InputNotFoundError(str(path), "no such file or folder", "check the --data path")


def fingerprint(
    sources: Sequence[Path], config: IndexConfig, model_sha: str
) -> tuple[str, list[dict[str, Any]]]:
    """The index fingerprint and the per-input checksums it is made of."""
    inputs = [{"path": str(p), "sha256": _input_checksum(p)} for p in sources]
    settings = asdict(config)
    # what changes vectors: the length, and INT8 (fp32 backends all give the same vectors)
    settings["embedder"] = {"max_length": config.embedder.max_length}
    if config.embedder.int8:
        settings["embedder"]["int8"] = True
    blob = json.dumps(
        {
            "format": INDEX_FORMAT,
            "inputs": [item["sha256"] for item in inputs],
            "model": model_sha,
            "settings": settings,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest(), inputs


def build_index(
    sources: Sequence[Path] | None = None,
    folder: Path | None = None,
    config: IndexConfig | None = None,
    *,
    embedder: Embedder | None = None,
    pairs: Iterable[QAPair] | None = None,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> KnowledgeIndex:
    """Read, chunk, embed and index the knowledge, then write the folder atomically.

    Args:
        sources: MedQuAD zip, folders or CSV files (default: MedQuAD in the shared data).
        folder: Where to write (default :func:`default_index_dir`).
        config: Chunking, dense index and model settings.
        embedder: The embedding model (default from ``config.embedder``).
        pairs: Use these pairs instead of reading ``sources`` (their checksums still
            identify the index).
        progress: Show a progress bar on stderr while embedding.
        on_progress: Called with (passages embedded, passages to embed) after each batch
            (the service shows it as "preparing, N %"); every tenth is also logged.
    """
    config = config or IndexConfig()
    sources = [Path(p) for p in (sources or [default_knowledge_path()])]
    folder = Path(folder) if folder is not None else default_index_dir()
    embedder = embedder or Embedder(config.embedder)
    started = time.perf_counter()
    model_sha = embedder.sha256(folder.parent)
    key, inputs = fingerprint(sources, config, model_sha)
    if pairs is None:
        pairs = (pair for source in sources for pair in read_knowledge(source))
    passages = chunk_pairs(pairs, config.chunk)
    if not passages:
        raise ConfigError(", ".join(map(str, sources)), "no question-answer text found", "")
    texts = [embed_text(p) for p in passages]
    vectors, reused = _reuse_vectors(folder, texts, model_sha, config)
    missing = [i for i, row in enumerate(vectors) if row is None]
    fresh = _embed(embedder, [texts[i] for i in missing], progress, on_progress)
    matrix = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for i, row in enumerate(vectors):
        if row is not None:
            matrix[i] = row
    if missing:
        matrix[missing] = fresh
    dense = DenseIndex(matrix, config.dense_kind(len(passages)), hnsw_m=config.hnsw_m)
    bm25 = BM25Index.build([terms(bm25_text(p)) for p in passages])
    manifest = {
        "format": INDEX_FORMAT,
        "fingerprint": key,
        "inputs": inputs,
        "model": {"path": str(embedder.model_path), "sha256": model_sha},
        "retriever": str(embedder.retriever) if embedder.retriever else None,
        "config": asdict(config),
        "dense": dense.kind,
        "pairs": len({(p.source, p.document_id, p.qa_id) for p in passages}),
        "passages": len(passages),
        "embedded": len(missing),
        "reused": reused,
        "build_seconds": round(time.perf_counter() - started, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write(folder, passages, dense, bm25, manifest)
    return KnowledgeIndex(folder, passages, dense, bm25, manifest)


def _embed(
    embedder: Embedder,
    texts: list[str],
    progress: bool,
    on_progress: Callable[[int, int], None] | None = None,
) -> Vectors:
    total, done, logged = len(texts), 0, -1
    started = time.perf_counter()

    def report(batch: int) -> None:
        nonlocal done, logged
        done += batch
        if on_progress is not None:
            on_progress(done, total)
        tenth = done * 10 // max(total, 1)
        if tenth > logged:
            logged = tenth
            log.info("embedding passages: %d/%d (%d %%, %.0f s)", done, total,
                     done * 100 // max(total, 1), time.perf_counter() - started)  # fmt: skip

    if not progress or not texts:
        return embedder.encode(texts, progress=report)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("Embedding passages", total=total)

        def both(batch: int) -> None:
            bar.advance(task, batch)
            report(batch)

        return embedder.encode(texts, progress=both)


def _reuse_vectors(
    folder: Path, texts: list[str], model_sha: str, config: IndexConfig
) -> tuple[list[Vectors | None], int]:
    """Vectors of an existing index in ``folder`` for the texts it already embedded."""
    found: list[Vectors | None] = [None] * len(texts)
    try:
        old = load_index(folder)
    except (InputNotFoundError, ConfigError, OSError, ValueError, KeyError):
        return found, 0
    same_model = old.manifest.get("model", {}).get("sha256") == model_sha
    old_embedder = old.manifest.get("config", {}).get("embedder", {})
    same_vectors = (old_embedder.get("max_length"), old_embedder.get("backend") == "onnx-int8") == (
        config.embedder.max_length,
        config.embedder.int8,
    )
    if not same_model or not same_vectors:
        return found, 0
    known = {embed_text(p): i for i, p in enumerate(old.passages)}
    reused = 0
    for i, text in enumerate(texts):
        j = known.get(text)
        if j is not None:
            found[i] = old.dense.vectors[j]
            reused += 1
    return found, reused


def _write(
    folder: Path,
    passages: list[Passage],
    dense: DenseIndex,
    bm25: BM25Index,
    manifest: dict[str, Any],
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    columns = {name: [getattr(p, name) for p in passages] for name in Passage.__dataclass_fields__}
    (staging / "passages.json").write_text(json.dumps(columns), encoding="utf-8")
    dense.save(staging)
    bm25.save(staging)
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
    retired = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)


def load_index(folder: Path | None = None) -> KnowledgeIndex:
    """Load an index folder as written by :func:`build_index` (no fingerprint check).

    Raises:
        InputNotFoundError: There is no index there.
        ConfigError: It was written by another index format.
    """
    folder = Path(folder) if folder is not None else default_index_dir()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise InputNotFoundError(
            str(folder), "no knowledge index here", "build it with `insightray index build`"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != INDEX_FORMAT:
        raise ConfigError(
            str(folder), "the index was built by another version", "rebuild it with --force"
        )
    columns = json.loads((folder / "passages.json").read_text(encoding="utf-8"))
    names = list(columns)
    passages = [
        Passage.from_dict(dict(zip(names, row, strict=True)))
        for row in zip(*columns.values(), strict=True)
    ]
    dense = DenseIndex.load(folder, manifest.get("dense", "flat"))
    bm25 = BM25Index.load(folder)
    return KnowledgeIndex(folder, passages, dense, bm25, manifest)


def open_index(
    sources: Sequence[Path] | None = None,
    folder: Path | None = None,
    config: IndexConfig | None = None,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    progress: bool = True,
) -> tuple[KnowledgeIndex, bool]:
    """Load the index in ``folder`` if it matches ``sources`` and ``config``, else build it.

    Returns:
        The index and whether it was (re)built.
    """
    config = config or IndexConfig()
    sources = [Path(p) for p in (sources or [default_knowledge_path()])]
    folder = Path(folder) if folder is not None else default_index_dir()
    embedder = embedder or Embedder(config.embedder)
    if not rebuild and (folder / MANIFEST).is_file():
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        key, _ = fingerprint(sources, config, embedder.sha256(folder.parent))
        if manifest.get("fingerprint") == key:
            return load_index(folder), False
    index = build_index(sources, folder, config, embedder=embedder, progress=progress)
    return index, True

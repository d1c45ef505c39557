"""Passage retrieval: dense (FAISS), lexical (BM25), their fusion and a light re-ranking.

* :class:`DenseIndex`: inner product over unit vectors (cosine), FAISS ``IndexFlatIP`` by
  default or ``IndexHNSWFlat`` for large collections; plain numpy when FAISS is missing.
* :class:`BM25Index`: Okapi BM25 over stemmed content words, as a sparse term-by-passage
  matrix of precomputed weights in plain numpy (a query is a sum of a few rows).
* :class:`Retriever`: either alone, or both fused by reciprocal rank (``1 / (k + rank)``,
  scaled so that first in both lists is 1) or by a weighted sum of min-max scaled scores;
  then a cheap re-ranking that rewards passages whose focus (the disease or topic) is named
  in the query and whose question type matches the asked one; chunks of one answer collapse
  to the best.

Example:
    >>> retriever = index.retriever()  # doctest: +SKIP
    >>> hits = retriever.search("how is gout treated", 2)  # doctest: +SKIP
    >>> [(h.passage.focus, h.passage.qtype) for h in hits]  # doctest: +SKIP
    [('Gout', 'treatment'), ('Gout', 'information')]
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from insightray.assistant.embeddings import Embedder, Vectors
from insightray.assistant.knowledge import Passage
from insightray.assistant.text import terms
from insightray.errors import ConfigError

__all__ = [
    "BM25Index",
    "DenseIndex",
    "Hit",
    "Retriever",
    "RetrieverConfig",
    "bm25_text",
    "focus_overlap",
]

Mode = Literal["hybrid", "dense", "bm25"]
Ids = NDArray[np.int64]


class DenseIndex:
    """Cosine search over unit vectors.

    Args:
        vectors: ``(n, dim)`` float32, rows of unit length.
        kind: ``"flat"`` (exact) or ``"hnsw"`` (approximate, for large collections).
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth (higher: better recall, slower).
    """

    def __init__(
        self,
        vectors: Vectors,
        kind: Literal["flat", "hnsw"] = "flat",
        *,
        hnsw_m: int = 32,
        ef_search: int = 128,
        faiss_index: Any = None,
    ) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.kind = kind
        self._index = faiss_index
        if self._index is None:
            try:
                import faiss
            except ImportError:
                if kind == "hnsw":
                    raise ConfigError(
                        "hnsw", "HNSW needs faiss-cpu", "pip install faiss-cpu or use flat"
                    ) from None
                return
            dim = self.vectors.shape[1]
            if kind == "hnsw":
                self._index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
                self._index.hnsw.efConstruction = 2 * hnsw_m
            else:
                self._index = faiss.IndexFlatIP(dim)
            if len(self.vectors):
                self._index.add(self.vectors)
        if kind == "hnsw":
            self._index.hnsw.efSearch = ef_search

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, query: Vectors, k: int) -> tuple[Ids, Vectors]:
        """Best ``k`` rows for one ``(dim,)`` query: ``(ids, cosines)``, best first."""
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._index is not None:
            scores, ids = self._index.search(query.reshape(1, -1).astype(np.float32), k)
            keep = ids[0] >= 0
            return ids[0][keep].astype(np.int64), scores[0][keep]
        cosines = self.vectors @ query
        top = np.argpartition(-cosines, k - 1)[:k]
        top = top[np.argsort(-cosines[top])]
        return top.astype(np.int64), cosines[top]

    def save(self, folder: Path) -> None:
        """Write ``vectors.npy`` (and ``hnsw.faiss`` for HNSW) into ``folder``."""
        np.save(folder / "vectors.npy", self.vectors)
        if self.kind == "hnsw" and self._index is not None:
            import faiss

            faiss.write_index(self._index, str(folder / "hnsw.faiss"))

    @classmethod
    def load(cls, folder: Path, kind: Literal["flat", "hnsw"] = "flat") -> DenseIndex:
        """Read what :meth:`save` wrote."""
        vectors = np.load(folder / "vectors.npy")
        if kind == "hnsw":
            import faiss

            return cls(vectors, "hnsw", faiss_index=faiss.read_index(str(folder / "hnsw.faiss")))
        return cls(vectors, "flat")


class BM25Index:
    """Okapi BM25 with precomputed per-term weights, stored term by term (CSR arrays).

    Args:
        vocabulary: Term -> row.
        indptr: Row ``i``'s entries are ``indptr[i]:indptr[i + 1]``.
        indices: Passage of each entry.
        weights: BM25 weight of each entry.
        passages: Number of passages.

    Example:
        >>> bm25 = BM25Index.build([["gout", "uric"], ["flu", "fever"], ["fever", "rash"]])
        >>> [int(i) for i in bm25.search(["fever", "rash"], 2)[0]]
        [2, 1]
    """

    def __init__(
        self,
        vocabulary: dict[str, int],
        indptr: NDArray[np.int64],
        indices: NDArray[np.int32],
        weights: Vectors,
        passages: int,
    ) -> None:
        self.vocabulary = vocabulary
        self.indptr = indptr
        self.indices = indices
        self.weights = weights
        self.passages = passages

    @classmethod
    def build(
        cls, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75
    ) -> BM25Index:
        """Index documents given as lists of terms (see ``text.terms``)."""
        vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[float] = []
        lengths = np.array([len(doc) for doc in documents], dtype=np.float32)
        for column, doc in enumerate(documents):
            for term, count in Counter(doc).items():
                rows.append(vocabulary.setdefault(term, len(vocabulary)))
                cols.append(column)
                counts.append(count)
        tf = np.array(counts, dtype=np.float32)
        row_ids = np.array(rows, dtype=np.int64)
        col_ids = np.array(cols, dtype=np.int64)
        average = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        df = np.bincount(row_ids, minlength=len(vocabulary)).astype(np.float32)
        n = float(len(documents))
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        norm = k1 * (1 - b + b * lengths[col_ids] / average)
        values = (idf[row_ids] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
        order = np.lexsort((col_ids, row_ids))
        indptr = np.concatenate([[0], np.cumsum(df.astype(np.int64))]).astype(np.int64)
        return cls(
            vocabulary, indptr, col_ids[order].astype(np.int32), values[order], len(documents)
        )

    def scores(self, query_terms: Sequence[str]) -> Vectors:
        """BM25 score of every passage for the query terms (repeats count once)."""
        rows = sorted({self.vocabulary[t] for t in query_terms if t in self.vocabulary})
        if not rows:
            return np.zeros(self.passages, dtype=np.float32)
        spans = [np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows]
        chosen = np.concatenate(spans)
        summed = np.bincount(
            self.indices[chosen], weights=self.weights[chosen], minlength=self.passages
        )
        return summed.astype(np.float32)

    def search(self, query_terms: Sequence[str], k: int) -> tuple[Ids, Vectors]:
        """Best ``k`` passages with a positive score: ``(ids, scores)``, best first."""
        return _top(self.scores(query_terms), k)

    def save(self, folder: Path) -> None:
        """Write ``bm25.npz`` (CSR arrays, the layout of scipy's ``save_npz``) and
        ``bm25-vocabulary.json`` into ``folder``."""
        np.savez(
            folder / "bm25.npz",
            indptr=self.indptr,
            indices=self.indices,
            data=self.weights,
            shape=np.array([len(self.vocabulary), self.passages]),
        )
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        (folder / "bm25-vocabulary.json").write_text(json.dumps(words), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        """Read what :meth:`save` wrote."""
        words = json.loads((folder / "bm25-vocabulary.json").read_text(encoding="utf-8"))
        with np.load(folder / "bm25.npz") as arrays:
            indptr = arrays["indptr"].astype(np.int64)
            indices = arrays["indices"].astype(np.int32)
            weights = arrays["data"].astype(np.float32)
            passages = int(arrays["shape"][1])
        return cls({word: i for i, word in enumerate(words)}, indptr, indices, weights, passages)


def bm25_text(passage: Passage) -> str:
    """What BM25 indexes for a passage: focus, its synonyms, the question and the text."""
    return " ".join((passage.focus, *passage.synonyms, passage.question, passage.text))


def focus_overlap(
    passage: Passage, query_terms: set[str], cache: dict[str, frozenset[str]] | None = None
) -> float:
    """Share of the focus's (or the best synonym's) terms that the query contains, 0 to 1.

    Example:
        >>> p = Passage("x", "s", "d", "1", "", "Kidney Stones", "causes", "q", "t")
        >>> focus_overlap(p, {"kidney", "ston", "pain"}), focus_overlap(p, {"kidney"})
        (1.0, 0.5)
    """
    best = 0.0
    for name in (passage.focus, *passage.synonyms):
        wanted = cache.get(name) if cache is not None else None
        if wanted is None:
            wanted = frozenset(terms(name))
            if cache is not None:
                cache[name] = wanted
        if wanted:
            best = max(best, len(wanted & query_terms) / len(wanted))
    return best


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its final score and the scores behind it."""

    passage: Passage
    score: float
    rank: int
    dense: float
    lexical: float
    focus_match: float

    def to_dict(self) -> dict[str, Any]:
        """The source record: source, document_id, qa_id, url, focus, qtype, text, score..."""
        p = self.passage
        return {
            "rank": self.rank,
            "source": p.source,
            "document_id": p.document_id,
            "qa_id": p.qa_id,
            "url": p.url,
            "focus": p.focus,
            "qtype": p.qtype,
            "question": p.question,
            "text": p.text,
            "score": round(self.score, 4),
            "dense": round(self.dense, 4),
            "lexical": round(self.lexical, 4),
        }


@dataclass(frozen=True)
class RetrieverConfig:
    """How :class:`Retriever` ranks.

    Attributes:
        mode: ``"hybrid"``, ``"dense"`` or ``"bm25"``.
        fusion: ``"rrf"`` (reciprocal rank) or ``"weighted"`` (min-max scaled scores).
        rrf_k: The RRF constant.
        dense_weight: Weight of the dense score in weighted fusion (BM25 gets the rest).
        candidates: Passages taken from each retriever before fusion.
        rerank: Apply the focus / question-type re-ranking.
        focus_boost: Added times the focus overlap (0 to 1).
        qtype_boost: Added when the passage's question type is the asked one.
        one_per_answer: Keep only the best chunk of each answer.
    """

    mode: Mode = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = 60
    dense_weight: float = 0.6
    candidates: int = 100
    rerank: bool = True
    focus_boost: float = 0.3
    qtype_boost: float = 0.15
    one_per_answer: bool = True


class Retriever:
    """Search passages by meaning, by words, or both.

    Args:
        passages: The passages, in index order.
        dense: Their vectors.
        bm25: Their BM25 index.
        embedder: Embeds queries (unless a query vector is given to :meth:`search`).
        config: Ranking settings.
    """

    def __init__(
        self,
        passages: Sequence[Passage],
        dense: DenseIndex,
        bm25: BM25Index,
        embedder: Embedder,
        config: RetrieverConfig | None = None,
    ) -> None:
        if not len(passages) == len(dense) == bm25.passages:
            raise ConfigError("index", "passages, vectors and BM25 disagree", "rebuild it")
        self.passages = passages
        self.dense = dense
        self.bm25 = bm25
        self.embedder = embedder
        self.config = config or RetrieverConfig()
        self._name_terms: dict[str, frozenset[str]] = {}
        self._answers: dict[tuple[str, str, str], list[int]] | None = None

    def chunks_of(self, passage: Passage) -> list[Passage]:
        """Every chunk of the answer ``passage`` belongs to, in order."""
        if self._answers is None:
            self._answers = {}
            for number, p in enumerate(self.passages):
                self._answers.setdefault((p.source, p.document_id, p.qa_id), []).append(number)
        key = (passage.source, passage.document_id, passage.qa_id)
        return [self.passages[i] for i in self._answers.get(key, [])]

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode | None = None,
        query_vector: Vectors | None = None,
        qtypes: Sequence[str] = (),
    ) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first.

        Args:
            query: The question.
            k: How many hits.
            mode: Override the configured mode.
            query_vector: The query's embedding, when already computed.
            qtypes: Question types asked for (passage ``qtype`` values), for re-ranking.
        """
        config = replace(self.config, mode=mode) if mode else self.config
        query_terms = terms(query)
        n = config.candidates
        vector = None
        dense_ids = np.zeros(0, dtype=np.int64)
        if config.mode != "bm25":
            vector = self.embedder.encode_one(query) if query_vector is None else query_vector
            dense_ids, _ = self.dense.search(vector, n)
        lexical_ids = np.zeros(0, dtype=np.int64)
        lexical_all = self.bm25.scores(query_terms) if config.mode != "dense" else None
        if lexical_all is not None:
            lexical_ids, _ = _top(lexical_all, n)
        candidates = np.unique(np.concatenate([dense_ids, lexical_ids]))
        if not len(candidates):
            return []
        cosines = (
            self.dense.vectors[candidates] @ vector
            if vector is not None
            else np.zeros(len(candidates), dtype=np.float32)
        )
        lexical = (
            lexical_all[candidates]
            if lexical_all is not None
            else np.zeros(len(candidates), dtype=np.float32)
        )
        base = self._fuse(config, candidates, dense_ids, lexical_ids, cosines, lexical)
        wanted = set(query_terms)
        asked = set(qtypes)
        hits: list[Hit] = []
        for index, passage_id in enumerate(candidates):
            passage = self.passages[int(passage_id)]
            focus = focus_overlap(passage, wanted, self._name_terms)
            score = float(base[index])
            if config.rerank:
                score += config.focus_boost * focus
                score += config.qtype_boost * (passage.qtype in asked)
            hits.append(Hit(passage, score, 0, float(cosines[index]), float(lexical[index]), focus))
        hits.sort(key=lambda hit: -hit.score)
        if config.one_per_answer:
            seen: set[tuple[str, str, str]] = set()
            unique = []
            for hit in hits:
                key = (hit.passage.source, hit.passage.document_id, hit.passage.qa_id)
                if key not in seen:
                    seen.add(key)
                    unique.append(hit)
            hits = unique
        return [replace(hit, rank=rank) for rank, hit in enumerate(hits[:k], start=1)]

    @staticmethod
    def _fuse(
        config: RetrieverConfig,
        candidates: Ids,
        dense_ids: Ids,
        lexical_ids: Ids,
        cosines: Vectors,
        lexical: Vectors,
    ) -> NDArray[Any]:
        if config.mode == "dense":
            return cosines
        if config.mode == "bm25":
            return lexical / max(float(lexical.max()), 1e-9)
        if config.fusion == "weighted":
            return config.dense_weight * _minmax(cosines) + (1 - config.dense_weight) * _minmax(
                lexical
            )
        fused = np.zeros(len(candidates), dtype=np.float64)
        position = {int(pid): i for i, pid in enumerate(candidates)}
        for ranking in (dense_ids, lexical_ids):
            for rank, pid in enumerate(ranking, start=1):
                fused[position[int(pid)]] += 1.0 / (config.rrf_k + rank)
        return fused / (2.0 / (config.rrf_k + 1))


def _top(scores: Vectors, k: int) -> tuple[Ids, Vectors]:
    k = min(k, int((scores > 0).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.astype(np.int64), scores[top]


def _minmax(values: Vectors) -> NDArray[Any]:
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)

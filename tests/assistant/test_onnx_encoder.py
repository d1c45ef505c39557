"""The ONNX Runtime encoder: the same vectors as PyTorch (fp32) or close ones (INT8), an
export made once per weights, and an index that never mixes INT8 and fp32 vectors."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.index import KnowledgeIndex, fingerprint, open_index
from insightray.assistant.onnx_encoder import ENCODER_RECIPE
from insightray.errors import ConfigError
from tests.assistant.conftest import SMALL

TEXTS = [
    "What causes gout?",
    "Gout is caused by uric acid crystals that build up in a joint.",
    "Metformin lowers blood sugar in type 2 diabetes; take it with meals.",
    "I have had a fever of 40 C for two days and now a rash.",
]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoders")


def test_onnx_fp32_gives_the_pytorch_vectors_and_int8_close_ones(
    embedder: Embedder, encoders: Path
) -> None:
    reference = embedder.encode(TEXTS)
    fp32 = Embedder(EmbedderConfig(backend="onnx", cache_dir=encoders)).encode(TEXTS)
    int8 = Embedder(EmbedderConfig(backend="onnx-int8", cache_dir=encoders)).encode(TEXTS)
    assert fp32.shape == int8.shape == reference.shape
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert (fp32 * reference).sum(1).min() > 0.9999
    cosines = (int8 * reference).sum(1)
    assert cosines.min() > 0.98, cosines
    assert not np.allclose(int8, reference, atol=1e-4), "INT8 really is quantised"
    # the nearest text stays the nearest: the question about gout and its answer
    assert int(np.argmax(int8[1:] @ int8[0])) == 0


def test_the_export_is_made_once_per_weights(encoders: Path, embedder: Embedder) -> None:
    Embedder(EmbedderConfig(backend="onnx-int8", cache_dir=encoders)).encode_one("warm up")
    exported = sorted(encoders.glob("*.onnx"))
    sha = embedder.sha256()
    assert [p.name for p in exported] == [
        f"{sha[:16]}-{ENCODER_RECIPE}-fp32.onnx",
        f"{sha[:16]}-{ENCODER_RECIPE}-int8.onnx",
    ]
    stamps = [p.stat().st_mtime_ns for p in exported]
    Embedder(EmbedderConfig(backend="onnx-int8", cache_dir=encoders)).encode_one("again")
    assert [p.stat().st_mtime_ns for p in exported] == stamps
    assert not list(encoders.glob("*.part")) and not list(encoders.glob("*.raw"))


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="Use one of auto, "):
        Embedder(EmbedderConfig(backend="tensorrt"))  # type: ignore[arg-type]


def test_int8_index_has_its_own_fingerprint_and_never_reuses_fp32_vectors(
    small_index: KnowledgeIndex, small_zip: Path, encoders: Path, tmp_path: Path
) -> None:
    int8 = replace(SMALL, embedder=replace(SMALL.embedder, backend="onnx-int8", cache_dir=encoders))
    sha = small_index.manifest["model"]["sha256"]
    fp32_key, _ = fingerprint([small_zip], SMALL, sha)
    onnx_fp32 = replace(SMALL, embedder=replace(SMALL.embedder, backend="onnx"))
    assert fingerprint([small_zip], onnx_fp32, sha)[0] == fp32_key  # same vectors, same index
    assert fingerprint([small_zip], int8, sha)[0] != fp32_key
    folder = tmp_path / "index"
    shutil.copytree(small_index.folder, folder)
    index, built = open_index([small_zip], folder, int8, progress=False)
    assert built
    assert index.manifest["reused"] == 0 and index.manifest["embedded"] == len(index.passages)
    assert index.manifest["config"]["embedder"]["backend"] == "onnx-int8"
    cosines = (index.dense.vectors * small_index.dense.vectors).sum(1)
    assert cosines.min() > 0.98 and cosines.max() < 1.0 - 1e-6

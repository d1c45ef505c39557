"""A small real index for the assistant tests: about 200 MedQuAD pairs, built once per run."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from insightray.assistant.chat import Assistant, AssistantConfig
from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.index import IndexConfig, KnowledgeIndex, build_index
from insightray.assistant.knowledge import ChunkConfig

#: MedQuAD documents of the small index: (folder, file stem).
DOCUMENTS = (
    *(
        ("4_MPlus_Health_Topics_QA", stem)
        for stem in (
            "0000409",
            "0000812",
            "0000753",
            "0000540",
            "0000369",
            "0000570",
            "0000159",
            "0000610",
            "0000406",
            "0000569",
            "0000065",
            "0000316",
            "0000173",
            "0000585",
            "0000669",
            "0000918",
            "0000471",
            "0000273",
            "0000333",
            "0000034",
        )
    ),
    *(("6_NINDS_QA", stem) for stem in ("0000194", "0000148", "0000120", "0000223")),
    *(("3_GHR_QA", stem) for stem in ("0000163", "0000262", "0000911", "0000773")),
    *(("3_GHR_QA", f"{number:07d}") for number in range(1, 31)),
)
#: Small and fast: short vectors are enough for these tests.
SMALL = IndexConfig(
    chunk=ChunkConfig(max_words=120, overlap_words=25),
    embedder=EmbedderConfig(max_length=64, batch_size=64),
)


def write_subset(medquad: Path, target: Path, documents: tuple[tuple[str, str], ...]) -> Path:
    """A MedQuAD-style zip holding only ``documents`` of the real zip."""
    wanted = {f"MedQuAD/{folder}/{stem}.xml" for folder, stem in documents}
    with zipfile.ZipFile(medquad) as source, zipfile.ZipFile(target, "w") as subset:
        for name in source.namelist():
            if name in wanted:
                subset.writestr(name, source.read(name))
    return target


@pytest.fixture(scope="session")
def medquad_zip(shared_data: Path) -> Path:
    path = shared_data / "text" / "qa" / "medquad.zip"
    if not path.is_file():
        pytest.skip(f"MedQuAD not found at {path}")
    return path


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(SMALL.embedder)


@pytest.fixture(scope="session")
def small_zip(medquad_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("knowledge")
    return write_subset(medquad_zip, folder / "medquad-small.zip", DOCUMENTS)


@pytest.fixture(scope="session")
def small_index(
    small_zip: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> KnowledgeIndex:
    folder = tmp_path_factory.mktemp("home") / "index"
    return build_index([small_zip], folder, SMALL, embedder=embedder, progress=False)


@pytest.fixture(scope="session")
def assistant(small_index: KnowledgeIndex, embedder: Embedder) -> Assistant:
    config = AssistantConfig(index_dir=small_index.folder, embedder=SMALL.embedder)
    return Assistant(config, index=small_index, embedder=embedder)

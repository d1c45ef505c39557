"""The hand labels of benchmarks/data/iu_negation_labels.jsonl: they load, every label is an
allowed observation and status, and each sentence's hash matches the shared data (when present).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from insightray.config import data_root

ROOT = Path(__file__).resolve().parents[1]


def _sampler() -> ModuleType:
    path = ROOT / "benchmarks" / "iu_negation_sample.py"
    spec = importlib.util.spec_from_file_location("iu_negation_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


SAMPLER = _sampler()


def test_labels_load_with_allowed_values() -> None:
    records = SAMPLER.load_labels()
    assert len(records) == 100
    assert len({(r["report"], r["section"], r["start"]) for r in records}) == 100
    for record in records:
        assert record["section"] in ("FINDINGS", "IMPRESSION")
        assert 0 <= record["start"] < record["end"]
        assert len(record["sha256"]) == 64
        assert record["stratum"] in ("cue", "random")
        assert isinstance(record["unsure"], bool)
        assert set(record["labels"]) <= set(SAMPLER.OBSERVATIONS)
        assert set(record["labels"].values()) <= set(SAMPLER.STATUSES)
    statuses = [s for r in records for s in r["labels"].values()]
    assert {s: statuses.count(s) for s in SAMPLER.STATUSES} == {
        "positive": 28,
        "negative": 46,
        "uncertain": 16,
    }


def test_hashes_match_the_shared_reports() -> None:
    archive = data_root() / SAMPLER.ARCHIVE
    if not archive.is_file():
        pytest.skip("the Indiana reports are not here (set INSIGHTRAY_DATA)")
    sentences = SAMPLER.labelled_sentences(archive)
    assert len(sentences) == 100
    assert all(s.text.strip() for s in sentences)


def test_a_changed_hash_is_refused(tmp_path: Path) -> None:
    archive = data_root() / SAMPLER.ARCHIVE
    if not archive.is_file():
        pytest.skip("the Indiana reports are not here (set INSIGHTRAY_DATA)")
    line = (ROOT / "benchmarks" / "data" / "iu_negation_labels.jsonl").read_text().splitlines()[0]
    record = SAMPLER.json.loads(line)
    record["sha256"] = "0" * 64
    bad = tmp_path / "labels.jsonl"
    bad.write_text(SAMPLER.json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="hash differs"):
        SAMPLER.labelled_sentences(archive, bad)

"""``benchmarks/bench_ssl_vs_scratch.py`` end to end at a tiny size: scratch and SSL arms, two
label fractions, one seed; paired differences are the per-seed differences of the arms. (The
ImageNet-started pre-training is tested in ``test_pretrain.py``.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("lightly", reason="self-supervised pre-training needs insightray[ssl]")

from tests.engine.fracture_helpers import make_labelled_folder

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_ssl_vs_scratch.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ssl_vs_scratch", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_runs_arms_fractions_and_seeds(tmp_path: Path, one_thread: None) -> None:
    data = make_labelled_folder(tmp_path / "data", count=24)
    out = tmp_path / "bench"
    summary = _bench().main([
        "--arms", "scratch,ssl", "--label-fractions", "0.5,1.0",
        "--seeds", "1", "--steps", "2", "--batch", "4", "--eval-every", "2",
        "--pretrain-steps", "2", "--pretrain-batch", "4", "--image-size", "48",
        "--threads", "1", "--device", "cpu", "--data", str(data),
        "--unlabelled", str(data / "images"), "--out", str(out),
    ])  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["results"] == summary["results"]
    for fraction in ("0.5", "1.0"):
        rows = summary["results"][fraction]
        assert set(rows) == {"scratch", "ssl", "ssl - scratch"}
        for arm in ("scratch", "ssl"):
            assert len(rows[arm]["values"]) == 1
            assert all(0 <= v <= 1 for v in rows[arm]["values"])
        diff = np.subtract(rows["ssl"]["values"], rows["scratch"]["values"])
        assert rows["ssl - scratch"]["values"] == pytest.approx(diff.tolist())
    half = json.loads((out / "scratch-f0.5-s0" / "split.json").read_text())
    full = json.loads((out / "scratch-f1.0-s0" / "split.json").read_text())
    assert 0 < len(half["train"]) < len(full["train"]) and full["test"] == []
    assert half["val"] == full["val"]  # the recipe split's validation part, for every arm
    parent = json.loads((out / "ssl-f1.0-s0" / "model" / "card.json").read_text())["lineage"]
    assert parent["parent"].endswith("pre-ssl/backbone.safetensors")
    backbone = (out / "pre-ssl" / "backbone.safetensors").stat().st_mtime_ns
    _bench().main([
        "--arms", "ssl", "--seeds", "1", "--steps", "2", "--batch", "4", "--image-size", "48",
        "--reuse-pretrain", "--device", "cpu", "--data", str(data), "--out", str(out),
    ])  # fmt: skip
    assert (out / "pre-ssl" / "backbone.safetensors").stat().st_mtime_ns == backbone


def test_bench_refuses_unknown_arm() -> None:
    with pytest.raises(SystemExit):
        _bench().parse_args(["--arms", "scratch,bogus"])

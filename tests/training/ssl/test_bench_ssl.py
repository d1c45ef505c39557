"""``benchmarks/bench_ssl_vs_scratch.py`` end to end at a tiny size: scratch and SSL arms, two
label fractions, one seed; paired differences are the per-seed differences of the arms; the
linear probe's features, its choice of ``C`` and the probe-only mode. (The ImageNet-started
pre-training is tested in ``test_pretrain.py``.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

pytest.importorskip("lightly", reason="self-supervised pre-training needs insightray[ssl]")

from insightray.training.fracture import FractureTrainConfig
from insightray.training.fracture.dataset import FractureItem
from insightray.training.fracture.trainer import build_classifier, predict_logits
from insightray.training.metrics.roc import roc_auc
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


def test_pooled_features_are_what_the_head_reads(one_thread: None) -> None:
    bench = _bench()
    torch.manual_seed(0)
    model = build_classifier(FractureTrainConfig(data="unused", image_size=48))
    images = np.random.default_rng(0).random((5, 48, 48)).astype(np.float16)
    device = torch.device("cpu")
    features = bench.pooled_features(model, images, device)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert features.shape == (5, head.in_features)
    with torch.no_grad():
        logits = head(torch.from_numpy(features).float()).numpy()[:, 0]
    assert logits == pytest.approx(predict_logits(model, images, device), abs=1e-4)
    assert not any(h for m in model.modules() for h in m._forward_pre_hooks.values())


def test_fit_probe_picks_c_on_training_groups_only() -> None:
    rng = np.random.default_rng(0)
    items = [FractureItem(Path(f"{i}.png"), i % 2, str(i // 4)) for i in range(40)]
    labels = np.array([item.label for item in items])
    train_x = rng.normal(size=(40, 30)) + labels[:, None] * np.eye(30)[0] * 3
    val_y = np.arange(20) % 2
    val_x = rng.normal(size=(20, 30)) + val_y[:, None] * np.eye(30)[0] * 3
    scores, c = _bench().fit_probe(train_x, items, val_x, seed=0)
    assert c in _bench().PROBE_CS and scores.shape == (20,)
    assert roc_auc(val_y, scores) > 0.9
    noise, _ = _bench().fit_probe(rng.normal(size=(40, 30)), items, val_x, seed=0)
    assert roc_auc(val_y, noise) < 0.9  # no signal in the training features, none learnt


def test_bench_probes_every_arm_per_seed(tmp_path: Path, one_thread: None) -> None:
    data = make_labelled_folder(tmp_path / "data", count=24)
    out = tmp_path / "bench"
    summary = _bench().main([
        "--arms", "scratch,ssl", "--probe", "--probe-fractions", "0.5,1.0",
        "--label-fractions", "", "--seeds", "2", "--pretrain-steps", "2",
        "--pretrain-batch", "4", "--image-size", "48", "--threads", "1", "--device", "cpu",
        "--data", str(data), "--unlabelled", str(data / "images"), "--out", str(out),
    ])  # fmt: skip
    assert summary["results"] == {}
    assert json.loads((out / "summary.json").read_text())["probe"] == summary["probe"]
    for fraction in ("0.5", "1.0"):
        rows = summary["probe"][fraction]
        assert set(rows) == {"scratch", "ssl", "ssl - scratch"}
        assert all(0 <= v <= 1 for arm in ("scratch", "ssl") for v in rows[arm]["values"])
        assert len(rows["ssl"]["values"]) == 2
        assert all(c in _bench().PROBE_CS for c in summary["probe_C"][fraction]["ssl"])
        paired = summary["probe_val_bootstrap"][fraction]["ssl - scratch"]
        assert [b["difference"] for b in paired] == pytest.approx(rows["ssl - scratch"]["values"])
        assert all(b["low"] <= b["high"] for b in paired)
    assert not list(out.glob("*-f*-s*"))  # no fine-tuning

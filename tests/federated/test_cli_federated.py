"""The federated verbs from the command line: split writes sites, bad input fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run_cli


def test_split_writes_disjoint_sites(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "fracture" / "bone_fracture_roboflow"
    if not source.is_dir():
        pytest.skip("bone_fracture_roboflow not in the shared data")
    done = run_cli(
        "federated",
        "split",
        "--data",
        str(source),
        "--sites",
        "3",
        "--out",
        str(tmp_path / "sites"),
    )
    assert done.returncode == 0, done.stderr
    assert "site_2:" in done.stdout and "test:" in done.stdout
    summary = json.loads((tmp_path / "sites" / "sites.json").read_text())
    assert len(summary["sites"]) == 3
    total = sum(s["images"] for s in summary["sites"]) + summary["test"]["images"]
    assert total == 938
    again = run_cli("federated", "split", "--data", str(source), "--out", str(tmp_path / "sites"))
    assert again.returncode == 2 and "already holds a site split" in again.stderr


def test_split_detect_prints_sites_and_the_held_out_test(tiny_data: Path, tmp_path: Path) -> None:
    done = run_cli(
        "federated",
        "split",
        "--task",
        "detect",
        "--data",
        str(tiny_data),
        "--sites",
        "2",
        "--label-skew",
        "0",
        "--out",
        str(tmp_path / "sites"),
    )
    assert done.returncode == 0, done.stderr
    assert "site_1:" in done.stdout and "test: 4 images" in done.stdout
    done = run_cli(
        "federated",
        "simulate",
        "--task",
        "detect",
        "--data",
        str(tmp_path / "sites"),
        "--sites",
        "2",
        "--dp-clip",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    assert done.returncode == 2 and "not offered for detect" in done.stderr
    assert "Traceback" not in done.stderr


def test_simulate_refuses_an_unknown_task_and_dp_noise_without_clip(tmp_path: Path) -> None:
    done = run_cli(
        "federated", "simulate", "--data", str(tmp_path), "--out", str(tmp_path), "--task", "cxr"
    )
    assert done.returncode == 2 and "('fracture', 'ner', 'detect')" in done.stderr
    done = run_cli(
        "federated",
        "simulate",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path),
        "--dp-noise",
        "1.0",
    )
    assert done.returncode == 2 and "--dp-clip" in done.stderr
    assert "Traceback" not in done.stderr


def test_keys_writes_a_pair_the_server_accepts_as_site_keys(tmp_path: Path) -> None:
    done = run_cli("federated", "keys", "--out", str(tmp_path / "keys"), "--name", "st_marys")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keys" / "st_marys").is_file()
    assert (tmp_path / "keys" / "st_marys.pub").read_text().startswith("ecdsa-sha2-nistp384 ")
    done = run_cli(
        "federated",
        "server",
        "--out",
        str(tmp_path / "run"),
        "--insecure",
        "--site-keys",
        str(tmp_path / "keys"),
    )
    assert done.returncode == 2 and "need TLS" in done.stderr
    done = run_cli(
        "federated", "server", "--out", str(tmp_path / "run"), "--insecure", "--task", "ner"
    )
    assert done.returncode == 2 and "--eval-data" in done.stderr

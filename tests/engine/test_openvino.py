"""OpenVINO on a tiny detector: fp32 agrees with ONNX Runtime, bf16 is close or refused, and a
bf16 copy (``optimize detect --bf16``) runs through the CLI and names its parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightray.engine import OpenVinoBackend, load_predictor
from insightray.engine.backends import require_bf16
from insightray.engine.bf16 import bf16_detector
from insightray.errors import ConfigError
from insightray.imaging import write_png
from insightray.models import load_card
from tests.engine.test_quantize import SIZE, tiny_detector_folder

pytestmark = pytest.mark.usefixtures("one_thread")

detector = pytest.fixture(scope="module", name="detector")(tiny_detector_folder)


def _bf16_available() -> bool:
    try:
        require_bf16()
    except ConfigError:
        return False
    return True


def test_openvino_fp32_agrees_with_onnx_runtime(detector: Path) -> None:
    batch = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    onnx = load_predictor(detector, task="detection", backend="onnx")
    openvino = load_predictor(detector, task="detection", backend="openvino")
    assert isinstance(openvino.backend, OpenVinoBackend)
    assert openvino.backend.input_size == (SIZE, SIZE)
    ours, theirs = openvino.backend(batch), onnx.backend(batch)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours[..., 4:], theirs[..., 4:], atol=1e-4)
    relative = np.abs(ours[..., :4] - theirs[..., :4]).max() / np.abs(theirs[..., :4]).max()
    assert relative < 1e-4


@pytest.mark.skipif(not _bf16_available(), reason="this processor has no native bf16")
def test_openvino_bf16_stays_close_to_fp32(detector: Path) -> None:
    batch = np.random.default_rng(1).random((1, 3, SIZE, SIZE), dtype=np.float32)
    fp32 = load_predictor(detector, task="detection", backend="openvino").backend(batch)
    bf16 = load_predictor(detector, task="detection", backend="openvino-bf16").backend(batch)
    difference = np.abs(bf16[..., 4:] - fp32[..., 4:])
    assert 0 < difference.max() < 0.05, "bf16 really computes in bf16, and stays close"


def test_openvino_refuses_what_it_cannot_run(
    detector: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino

    with pytest.raises(ConfigError, match="CPU only"):
        load_predictor(detector, task="detection", backend="openvino", device="cuda")
    with pytest.raises(ConfigError, match="unknown precision"):
        OpenVinoBackend(detector / "weights.onnx", "int4")
    monkeypatch.setattr(openvino.Core, "get_property", lambda self, device, name: ["FP32", "INT8"])
    with pytest.raises(ConfigError, match="no bf16 instructions"):
        load_predictor(detector, task="detection", backend="openvino-bf16")
    with pytest.raises(ConfigError, match="no bf16 instructions"):
        bf16_detector(detector, tmp_path / "bf16")
    assert not (tmp_path / "bf16").exists(), "nothing is written on a processor without bf16"


@pytest.mark.skipif(not _bf16_available(), reason="this processor has no native bf16")
def test_bf16_copy_runs_in_bf16_everywhere_and_names_its_parent(
    detector: Path, tmp_path: Path
) -> None:
    from tests.test_cli_detect import cli

    out = tmp_path / "bf16"
    code, _, stderr = cli(
        "optimize", "detect", "--bf16", "--model", str(detector), "--out", str(out)
    )
    assert code == 0, stderr
    card = load_card(out / "card.json")
    assert card.backend == "openvino-bf16" and card.version == "0.1.0+bf16"
    assert card.lineage.method == "converted"
    assert card.lineage.parent_sha256 == load_card(detector / "card.json").weights_sha256
    predictor = load_predictor(out, task="detection")
    assert isinstance(predictor.backend, OpenVinoBackend)
    assert predictor.backend.precision == "bf16"
    image = tmp_path / "image.png"
    write_png(np.random.default_rng(2).random((80, 96), dtype=np.float32), image)
    code, stdout, stderr = cli("detect", str(image), "--model", str(out), "--json")
    assert code == 0 and '"version": "0.1.0+bf16"' in stdout, stderr
    code, _, stderr = cli("optimize", "detect", "--int8", "--bf16", "--out", str(tmp_path / "x"))
    assert code != 0 and "one method" in stderr

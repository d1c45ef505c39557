"""Per-convolution channel widths: how a channel-pruned detector is described and rebuilt.

Structured pruning leaves a network whose convolutions no longer follow the width multiple.
Such a network is described by data, never by pickled modules: a mapping from each changed
convolution's dotted name to its ``[out_channels, in_channels]``. The model card keeps that
mapping in ``preprocessing.model_kwargs["channel_widths"]``; the builder makes the standard
network, then :func:`apply_channel_widths` replaces those convolutions (and the batch norm
that follows each) with narrower ones, so the safetensors state dict fits it exactly.

Example:
    >>> from insightray.models.detection.yolo import YoloV5
    >>> model = YoloV5(num_classes=1, variant="n")
    >>> apply_channel_widths(model, {"layers.0.conv": [8, 3], "layers.1.conv": [32, 8]})
    >>> model.layers[0].conv.out_channels, model.layers[1].conv.in_channels
    (8, 8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from insightray.errors import ConfigError

__all__ = ["ChannelWidths", "apply_channel_widths", "conv_widths"]

#: Dotted convolution name -> ``[out_channels, in_channels]``.
ChannelWidths = Mapping[str, Sequence[int]]


def conv_widths(model: nn.Module) -> dict[str, list[int]]:
    """Every ``Conv2d``'s ``[out_channels, in_channels]`` by dotted name."""
    return {
        name: [module.out_channels, module.in_channels]
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    }


def apply_channel_widths(model: nn.Module, widths: ChannelWidths) -> None:
    """Replace the named convolutions (and the batch norm after each) by ones of these widths.

    Weights of replaced layers are freshly initialised: load a state dict afterwards.

    Raises:
        ConfigError: A name is not a convolution of the model, or a width is not positive.
    """
    modules = dict(model.named_modules())
    for name, pair in widths.items():
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d) or len(pair) != 2 or min(pair) < 1:
            raise ConfigError(
                f"channel_widths {name!r}",
                "not a convolution of this architecture with two positive widths",
                "rebuild the card from the pruned model (optimize detect --prune)",
            )
        if conv.groups != 1:
            raise ConfigError(f"channel_widths {name!r}", "grouped convolution", "prune again")
        out_channels, in_channels = int(pair[0]), int(pair[1])
        replacement = nn.Conv2d(
            in_channels,
            out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            bias=conv.bias is not None,
        )
        parent_name, _, attribute = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, attribute, replacement)
        norm = getattr(parent, "bn", None)
        if attribute == "conv" and isinstance(norm, nn.BatchNorm2d):
            parent.bn = nn.BatchNorm2d(out_channels, norm.eps, norm.momentum)

"""Convolutional building blocks shared by the detection models.

Every block maps ``(B, C_in, H, W)`` to ``(B, C_out, H', W')``; only strided convolutions,
:class:`Focus` and upsampling change the spatial size. The blocks follow the shapes described in
the YOLOv5 papers and model cards (CSP bottlenecks, spatial pyramid pooling), written from
scratch for Insight Ray.

Example:
    >>> import torch
    >>> block = C3(32, 64, num_blocks=2)
    >>> block(torch.zeros(1, 32, 16, 16)).shape
    torch.Size([1, 64, 16, 16])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "C3",
    "SPP",
    "SPPF",
    "Bottleneck",
    "Concat",
    "Conv",
    "Focus",
    "autopad",
    "fuse_conv_bn",
    "space_to_depth",
]


def autopad(kernel_size: int, padding: int | None = None, dilation: int = 1) -> int:
    """Return the padding that keeps the spatial size at stride 1 ("same" padding).

    Args:
        kernel_size: Square kernel size.
        padding: Explicit padding; returned unchanged when given.
        dilation: Kernel dilation.

    Returns:
        The padding to use on every side.
    """
    if padding is not None:
        return padding
    effective_kernel = dilation * (kernel_size - 1) + 1
    return effective_kernel // 2


def fuse_conv_bn(conv: nn.Conv2d, batch_norm: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold an inference-mode batch norm into the convolution before it.

    ``batch_norm(conv(x))`` equals ``fused(x)`` when the batch norm uses its running statistics.

    Args:
        conv: The convolution (with or without bias).
        batch_norm: The batch norm that follows it.

    Returns:
        A new convolution with bias that computes both at once.
    """
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        running_var = batch_norm.running_var
        running_mean = batch_norm.running_mean
        if running_var is None or running_mean is None:
            raise ValueError("fuse_conv_bn needs a batch norm that tracks running statistics")
        gamma = batch_norm.weight if batch_norm.weight is not None else torch.ones_like(running_var)
        beta = batch_norm.bias if batch_norm.bias is not None else torch.zeros_like(running_mean)
        scale = gamma / torch.sqrt(running_var + batch_norm.eps)
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(running_mean)
        assert fused.bias is not None
        fused.bias.copy_(beta + (conv_bias - running_mean) * scale)
    return fused


class Conv(nn.Module):
    """Convolution, batch norm and SiLU: the basic unit of every YOLOv5 block.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Stride; 2 halves the spatial size.
        padding: Padding; ``None`` pads to keep the size at stride 1.
        groups: Convolution groups.
        dilation: Kernel dilation.
        activation: Apply SiLU when true, identity otherwise.
        bn_eps: Batch norm epsilon.
        bn_momentum: Batch norm momentum.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        activation: bool = True,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        self.conv: nn.Conv2d = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            autopad(kernel_size, padding, dilation),
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(
            out_channels, eps=bn_eps, momentum=bn_momentum
        )
        self.act: nn.Module = nn.SiLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply convolution, batch norm (gone once fused) and activation."""
        x = self.conv(x)
        # Skipping the fused-away norm, rather than calling an Identity, saves a module call
        # per convolution: measurable at batch 1 on a GPU, where launches dominate.
        return self.act(x if self.bn is None else self.bn(x))  # type: ignore[no-any-return]

    def fuse(self) -> None:
        """Fold the batch norm into the convolution in place (for inference)."""
        if self.bn is not None:
            self.conv = fuse_conv_bn(self.conv, self.bn)
            self.bn = None


class Bottleneck(nn.Module):
    """A 1x1 then 3x3 convolution pair with an optional residual connection.

    The residual is added only when ``shortcut`` is true and the channel counts match.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        shortcut: Add the input to the output.
        groups: Groups of the 3x3 convolution.
        expansion: Hidden channels as a fraction of ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        self.conv1 = Conv(in_channels, hidden_channels, 1, 1)
        self.conv2 = Conv(hidden_channels, out_channels, 3, 1, groups=groups)
        self.use_shortcut = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + conv2(conv1(x))`` or, without shortcut, ``conv2(conv1(x))``."""
        out: torch.Tensor = self.conv2(self.conv1(x))
        return x + out if self.use_shortcut else out


class C3(nn.Module):
    """Cross-stage partial block with three convolutions.

    The input splits into two 1x1 branches of ``out_channels * expansion`` channels; one runs
    through ``num_blocks`` bottlenecks, then both are concatenated and merged by a third 1x1
    convolution.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        num_blocks: Bottlenecks in the main branch.
        shortcut: Use residual connections inside the bottlenecks.
        groups: Groups of the bottleneck 3x3 convolutions.
        expansion: Branch channels as a fraction of ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden_channels = int(out_channels * expansion)
        self.main_in = Conv(in_channels, hidden_channels, 1, 1)
        self.skip_in = Conv(in_channels, hidden_channels, 1, 1)
        self.blocks = nn.Sequential(
            *(
                Bottleneck(hidden_channels, hidden_channels, shortcut, groups, expansion=1.0)
                for _ in range(num_blocks)
            )
        )
        self.merge = Conv(2 * hidden_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run both branches and merge them."""
        main = self.blocks(self.main_in(x))
        return self.merge(torch.cat((main, self.skip_in(x)), dim=1))  # type: ignore[no-any-return]


class SPP(nn.Module):
    """Spatial pyramid pooling: parallel stride-1 max pools of several sizes, concatenated.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        pool_sizes: Max-pool kernel sizes (odd), applied in parallel.
    """

    def __init__(
        self, in_channels: int, out_channels: int, pool_sizes: Sequence[int] = (5, 9, 13)
    ) -> None:
        super().__init__()
        hidden_channels = in_channels // 2
        self.reduce = Conv(in_channels, hidden_channels, 1, 1)
        self.pools = nn.ModuleList(
            nn.MaxPool2d(kernel_size=size, stride=1, padding=size // 2) for size in pool_sizes
        )
        self.merge = Conv(hidden_channels * (len(pool_sizes) + 1), out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the reduced input with each pooled copy, then merge."""
        reduced = self.reduce(x)
        pooled = [reduced, *(pool(reduced) for pool in self.pools)]
        return self.merge(torch.cat(pooled, dim=1))  # type: ignore[no-any-return]


class SPPF(nn.Module):
    """Fast spatial pyramid pooling: one max pool applied three times in sequence.

    Chaining stride-1 max pools of size ``k`` gives windows of ``k``, ``2k - 1`` and ``3k - 2``,
    so ``k=5`` computes exactly what :class:`SPP` with sizes 5, 9 and 13 computes, for less work.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        pool_size: Max-pool kernel size (odd).
    """

    def __init__(self, in_channels: int, out_channels: int, pool_size: int = 5) -> None:
        super().__init__()
        hidden_channels = in_channels // 2
        self.reduce = Conv(in_channels, hidden_channels, 1, 1)
        self.pool = nn.MaxPool2d(kernel_size=pool_size, stride=1, padding=pool_size // 2)
        self.merge = Conv(hidden_channels * 4, out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the reduced input with three successive poolings, then merge."""
        reduced = self.reduce(x)
        pooled_once = self.pool(reduced)
        pooled_twice = self.pool(pooled_once)
        pooled_thrice = self.pool(pooled_twice)
        stacked = torch.cat((reduced, pooled_once, pooled_twice, pooled_thrice), dim=1)
        return self.merge(stacked)  # type: ignore[no-any-return]


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """Move each 2x2 pixel neighbourhood into channels: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``.

    The four channel groups hold, in order, the pixels at (even row, even column),
    (odd row, even column), (even row, odd column) and (odd row, odd column).

    Args:
        x: A tensor with even height and width.

    Returns:
        The rearranged tensor; no values are lost or changed.
    """
    return torch.cat(
        (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1
    )


class Focus(nn.Module):
    """Stem that halves the resolution losslessly with :func:`space_to_depth`, then convolves.

    A 640x640x3 image becomes 320x320x12 before the convolution.

    Args:
        in_channels: Input image channels.
        out_channels: Output channels.
        kernel_size: Kernel size of the convolution after the rearrangement.
        stride: Stride of that convolution.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = Conv(in_channels * 4, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rearrange 2x2 neighbourhoods into channels and convolve."""
        return self.conv(space_to_depth(x))  # type: ignore[no-any-return]


class Concat(nn.Module):
    """Concatenate a list of tensors along one dimension (channels by default).

    Args:
        dimension: The dimension to concatenate along.
    """

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.dimension = dimension

    def forward(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Return the concatenation of ``tensors``."""
        return torch.cat(tensors, dim=self.dimension)

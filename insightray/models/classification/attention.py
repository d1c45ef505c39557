"""Attention blocks for radiograph classifiers: CBAM and 2-D multi-head self-attention.

:class:`Cbam` (Woo et al., ECCV 2018) re-weights a feature map first per channel, from an MLP
shared by its average- and max-pooled descriptors, then per position, from a 7x7 convolution
over the channel-wise average and maximum. :class:`SelfAttention2d` treats every position of a
feature map as a token, adds a learned 2-D position encoding (one table per axis) and runs
multi-head self-attention (8 heads by default) with a residual connection, the way BoTNet
places global attention in the last stage. Both keep the input shape, so either can be
inserted after any stage.

Example:
    >>> import torch
    >>> x = torch.randn(2, 64, 8, 8)
    >>> Cbam(64)(x).shape, SelfAttention2d(64, heads=8, size=(8, 8))(x).shape
    (torch.Size([2, 64, 8, 8]), torch.Size([2, 64, 8, 8]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from insightray.errors import ConfigError

__all__ = ["Cbam", "ChannelAttention", "SelfAttention2d", "SpatialAttention"]


class ChannelAttention(nn.Module):
    """Channel gate: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` times ``x``.

    Args:
        channels: Feature channels.
        reduction: Hidden width of the shared MLP is ``channels // reduction`` (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.mlp(F.adaptive_avg_pool2d(x, 1))
        maximum = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(average + maximum)


class SpatialAttention(nn.Module):
    """Spatial gate: ``sigmoid(conv7x7([mean_c(x), max_c(x)]))`` times ``x``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class Cbam(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention.

    Args:
        channels: Feature channels.
        reduction: Channel MLP reduction ratio.
        kernel_size: Spatial attention kernel.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))  # type: ignore[no-any-return]


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the positions of a feature map, with a residual.

    The position encoding is learned: a row table ``(channels, rows, 1)`` plus a column table
    ``(channels, 1, cols)``, broadcast to the grid. Inputs of another grid size get the
    tables resized bilinearly, so the block also runs at other image sizes.

    Args:
        channels: Feature channels (divisible by ``heads``).
        heads: Attention heads.
        size: ``(rows, cols)`` of the grid the position tables are learnt for.
        dropout: Attention dropout.
    """

    def __init__(
        self, channels: int, heads: int = 8, size: tuple[int, int] = (7, 7), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(
                "SelfAttention2d", f"{channels} channels do not split into {heads} heads", ""
            )
        rows, cols = size
        self.row_embedding = nn.Parameter(torch.randn(1, channels, rows, 1) * 0.02)
        self.col_embedding = nn.Parameter(torch.randn(1, channels, 1, cols) * 0.02)
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True)

    def position_encoding(self, rows: int, cols: int) -> torch.Tensor:
        """The ``(1, channels, rows, cols)`` encoding for a grid of that size."""
        table = self.row_embedding + self.col_embedding
        if table.shape[-2:] != (rows, cols):
            table = F.interpolate(table, size=(rows, cols), mode="bilinear", align_corners=False)
        return table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, rows, cols = x.shape
        tokens = (x + self.position_encoding(rows, cols)).flatten(2).transpose(1, 2)
        tokens = self.norm(tokens)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + attended.transpose(1, 2).reshape(batch, channels, rows, cols)  # type: ignore[no-any-return]

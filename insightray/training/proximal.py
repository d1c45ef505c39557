"""FedProx's proximal term (Li et al. 2020), shared by every trainer's local-round step.

A federated site trains from the global weights ``w_global``; FedProx adds
``mu / 2 * ||w - w_global||^2`` to each step's loss so a site's model does not drift far from
the global one on non-IID data. :func:`anchor_of` keeps the starting weights and
:func:`proximal_term` computes the penalty against them.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> anchor = anchor_of(model)
    >>> float(proximal_term(model, anchor, 0.1))
    0.0
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["anchor_of", "proximal_term"]


def anchor_of(model: nn.Module) -> list[torch.Tensor]:
    """Detached copies of ``model``'s parameters: the weights the round started from."""
    return [p.detach().clone() for p in model.parameters()]


def proximal_term(model: nn.Module, anchor: list[torch.Tensor], mu: float) -> torch.Tensor:
    """``mu / 2`` times the squared L2 distance of ``model``'s parameters from ``anchor``."""
    distance = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
    return mu / 2 * torch.as_tensor(distance)

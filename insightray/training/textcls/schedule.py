"""Progressive fine-tuning schedule: phases, layer-wise learning rates, warm-up and cosine.

Layer numbering: the embeddings are layer 0, transformer layer ``i`` is ``i + 1`` and anything
above the last layer (a pooler) counts as the top layer ``L``. Layer-wise decay gives layer
``l`` the rate ``lr * alpha ** (L - l)``; the head has its own rate. Biases, norms and
embeddings get no weight decay, so embedding rows of words never seen in training stay exactly
as they were (which keeps the stored deltas small).

Example:
    >>> [round(lr_factor(step, 10, 0.2, 1), 3) for step in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from insightray.models.text.bert_classifier import BertClassifier

__all__ = ["Phase", "default_phases", "layer_of", "lr_factor", "parameter_groups", "set_trainable"]


@dataclass(frozen=True)
class Phase:
    """One stage of progressive fine-tuning.

    Attributes:
        name: Shown in logs.
        epochs: Passes over the training split.
        lr: Learning rate of the top encoder layer (unused when ``unfreeze == 0``).
        head_lr: Learning rate of the classification head.
        unfreeze: Top encoder layers to train: 0 = head only, ``None`` = all, embeddings too.
        layer_decay: ``alpha`` of layer-wise decay; 1.0 gives every layer ``lr``.
    """

    name: str
    epochs: int
    lr: float
    head_lr: float
    unfreeze: int | None
    layer_decay: float = 1.0


def default_phases() -> tuple[Phase, ...]:
    """Head only (5 epochs), top 4 layers at a reduced rate (3), all with decay 0.8 (4)."""
    return (
        Phase("head", 5, lr=0.0, head_lr=2e-3, unfreeze=0),
        Phase("top4", 3, lr=3e-5, head_lr=5e-4, unfreeze=4),
        Phase("all", 4, lr=8e-5, head_lr=5e-4, unfreeze=None, layer_decay=0.8),
    )


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def lr_factor(step: int, total: int, warmup_ratio: float = 0.1, cycles: int = 1) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine annealing with hard restarts.

    Example:
        >>> [round(lr_factor(s, 10, 0.2, 1), 3) for s in (0, 1, 2, 6, 9)]
        [0.5, 1.0, 1.0, 0.5, 0.038]
    """
    warmup = round(total * warmup_ratio)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    position = (progress * max(1, cycles)) % 1.0
    return 0.5 * (1.0 + math.cos(math.pi * position))


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_of(name: str, num_layers: int) -> int:
    """0 for embeddings, ``i + 1`` for transformer layer ``i``, ``L`` for anything above."""
    found = _LAYER.search(name)
    if found:
        return int(found.group(1)) + 1
    return 0 if "embed" in name else num_layers


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "norm" in name.lower() or "embed" in name


def parameter_groups(
    model: BertClassifier, phase: Phase, weight_decay: float
) -> list[dict[str, Any]]:
    """Optimiser groups for the trainable parameters, one per (layer, decay) pair.

    Example:
        >>> groups = parameter_groups(model, Phase("all", 1, 1e-4, 1e-3, None, 0.5), 0.01)
        ...  # doctest: +SKIP
    """
    top = model.num_layers
    buckets: dict[tuple[str, int, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if name.startswith("head.") else "encoder"
        layer = top if part == "head" else layer_of(name.removeprefix("encoder."), top)
        buckets.setdefault((part, layer, _no_decay(name)), []).append(param)
    groups = []
    for (part, layer, plain), params in sorted(buckets.items(), key=lambda kv: kv[0]):
        lr = phase.head_lr if part == "head" else phase.lr * phase.layer_decay ** (top - layer)
        wd = 0.0 if plain else weight_decay
        groups.append({"params": params, "lr": lr, "weight_decay": wd, "name": f"{part}{layer}"})
    return groups


def set_trainable(model: BertClassifier, unfreeze: int | None) -> None:
    top = model.num_layers
    for name, param in model.encoder.named_parameters():
        layer = layer_of(name, top)
        in_top = unfreeze is not None and layer > 0 and layer > top - unfreeze
        param.requires_grad = unfreeze is None or in_top
    for param in model.head.parameters():
        param.requires_grad = True

"""Where the disease classifier's self-attention looks: attention rollout over its layers.

Raw attention of one layer says little about the input: after the first layer every position
already mixes all the words. Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow
in Transformers", ACL 2020) follows the mixing through the whole encoder: each layer's
attention is averaged over its heads, the residual connection is accounted for by adding the
identity (``0.5 A + 0.5 I``), rows are renormalised, and the layers are multiplied from the
first to the last. Row ``i`` of the product says how much the last layer's token ``i`` draws
on each input token; every row sums to 1.

The classifier's head reads the ``[CLS]`` token (``"cls"`` pooling) or the mask-weighted mean
of all tokens (``"mean"``), so the weight of an input token is that row (or the mean of the
rows): :func:`token_attention`. The weights are not signed and do not depend on the label:
they say what the model looked at, not what pushed it towards a disease (that is what
integrated gradients in :mod:`insightray.nlp.attribution` answer).

Example:
    >>> import torch
    >>> layers = [torch.full((1, 2, 3, 3), 1 / 3) for _ in range(4)]
    >>> attention_rollout(layers)[0].sum(dim=-1)
    tensor([1.0000, 1.0000, 1.0000])
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.errors import InputError
from insightray.models.text.bert_classifier import BertClassifier

__all__ = ["attention_rollout", "pooled_weights", "token_attention"]

#: Switching the encoder's attention kernel is a change to a shared model: one at a time.
_KERNEL_LOCK = threading.Lock()


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Roll the layers' attention out: ``(batch, seq, seq)``, each row summing to 1.

    Args:
        attentions: One ``(batch, heads, seq, seq)`` tensor per layer, first layer first, each
            row a distribution (softmax output; masked keys have weight 0).

    Raises:
        InputError: No layers, or tensors that are not square attention maps.
    """
    if not attentions:
        raise InputError("attentions", "no layers were given", "pass the encoder's attentions")
    rollout: torch.Tensor | None = None
    for layer in attentions:
        if layer.dim() != 4 or layer.shape[-1] != layer.shape[-2]:
            raise InputError(
                "attentions", f"shape {tuple(layer.shape)} is not (batch, heads, seq, seq)",
                "pass the encoder's output_attentions",
            )  # fmt: skip
        mixed = 0.5 * layer.float().mean(dim=1) + 0.5 * torch.eye(layer.shape[-1])
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout
    assert rollout is not None
    return rollout


def pooled_weights(rollout: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The rolled-out attention of what the head reads, ``(batch, seq)``, each row summing to 1:
    the ``[CLS]`` row (``"cls"``) or the mask-weighted mean of the rows (``"mean"``)."""
    if pooling == "cls":
        return rollout[:, 0]
    weights = mask.to(rollout.dtype)
    weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-9)
    return (weights.unsqueeze(-1) * rollout).sum(dim=1)


def token_attention(
    model: BertClassifier, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> NDArray[np.float64]:
    """Attention-rollout weight of each token of one text, ``(seq,)``, summing to 1.

    Args:
        model: The classifier (its encoder must be able to return attention maps).
        input_ids: ``(1, seq)`` token ids.
        attention_mask: ``(1, seq)``.
    """
    with _eager_attention(model.encoder), torch.no_grad():
        output = model.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_attentions=True
        )
    rollout = attention_rollout(list(output.attentions))
    weights = pooled_weights(rollout, attention_mask, model.pooling)[0]
    return weights.double().numpy()


@contextlib.contextmanager
def _eager_attention(encoder: Any) -> Iterator[None]:
    """Run the encoder with the eager attention kernel (fused kernels return no attention
    maps), then put its kernel back."""
    with _KERNEL_LOCK:
        kernel = encoder.config._attn_implementation
        if kernel != "eager":
            encoder.set_attn_implementation("eager")
        try:
            yield
        finally:
            if kernel != "eager":
                encoder.set_attn_implementation(kernel)

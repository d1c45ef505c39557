"""Adapting an encoder to a domain: vocabulary expansion and masked-language-model training.

Vocabulary expansion adds whole domain words (``psoriasis``, ``hemorrhoids``) that the
tokenizer would cut into three or more pieces; each new embedding row starts as the mean of
the rows of the pieces it replaces, so the model's first guess for the word is what it
"read" before. MLM adaptation then trains the encoder on unlabelled local text (BERT masking:
15 % of tokens, of which 80 % become ``[MASK]``, 10 % a random token, 10 % unchanged) with a
small prediction head tied to the input embeddings; the head is thrown away afterwards.

Example:
    >>> terms = mine_domain_terms(texts, tokenizer, max_terms=50)  # doctest: +SKIP
    >>> added = expand_vocabulary(model.encoder, tokenizer, terms)  # doctest: +SKIP
    >>> mlm_adapt(model.encoder, tokenizer, load_corpus("medquad.zip"), MlmConfig(steps=200))
    ...  # doctest: +SKIP
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from insightray.errors import ConfigError

__all__ = ["MlmConfig", "expand_vocabulary", "mine_domain_terms", "mlm_adapt"]

_WORD = re.compile(r"[a-z][a-z\-]{3,}[a-z]")


def mine_domain_terms(
    texts: Sequence[str],
    tokenizer: Any,
    max_terms: int = 50,
    min_count: int = 3,
    min_pieces: int = 3,
) -> list[str]:
    """Frequent lower-case words the tokenizer splits into ``min_pieces`` or more pieces.

    Ranked by ``count * (pieces - 1)`` (the tokens a new entry saves), ties alphabetical.

    Example:
        >>> mine_domain_terms(["psoriasis"] * 3, tokenizer)  # doctest: +SKIP
        ['psoriasis']
    """
    counts = Counter(word for text in texts for word in _WORD.findall(text.lower()))
    scored: list[tuple[int, str]] = []
    for word, count in counts.items():
        if count < min_count:
            continue
        pieces = len(tokenizer.tokenize(word))
        if pieces >= min_pieces:
            scored.append((count * (pieces - 1), word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [word for _, word in scored[:max_terms]]


def expand_vocabulary(encoder: nn.Module, tokenizer: Any, terms: Sequence[str]) -> list[str]:
    """Add ``terms`` as whole-word tokens, resize the embeddings, init rows from their pieces.

    Terms already in the vocabulary are skipped.

    Returns:
        The terms actually added, in the order of their new token ids.
    """
    from transformers import AddedToken

    vocab = tokenizer.get_vocab()
    fresh = [t for t in dict.fromkeys(terms) if t and t not in vocab]
    pieces = {t: tokenizer(t, add_special_tokens=False)["input_ids"] for t in fresh}
    if not fresh:
        return []
    tokenizer.add_tokens([AddedToken(t, single_word=True, normalized=True) for t in fresh])
    backbone: Any = encoder  # a transformers model
    backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = backbone.get_input_embeddings().weight
    with torch.no_grad():
        for term in fresh:
            new_id = tokenizer.convert_tokens_to_ids(term)
            weight[new_id] = weight[pieces[term]].mean(dim=0)
    return fresh


@dataclass(frozen=True)
class MlmConfig:
    """Masked-language-model adaptation settings.

    Attributes:
        steps: Optimiser steps (0 turns adaptation off).
        lr: AdamW learning rate.
        batch_size: Texts per step.
        max_length: Token limit per text.
        mask_probability: Share of tokens to predict.
        seed: Seed for masking and sampling.
    """

    steps: int = 0
    lr: float = 5e-5
    batch_size: int = 16
    max_length: int = 128
    mask_probability: float = 0.15
    seed: int = 13


class _MlmHead(nn.Module):
    """Transform + decoder tied to the input embeddings (BERT's prediction head)."""

    def __init__(self, embeddings: nn.Embedding, hidden: int) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden))
        self.embeddings = embeddings
        self.bias = nn.Parameter(torch.zeros(embeddings.num_embeddings))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.transform(hidden) @ self.embeddings.weight.T + self.bias
        return logits


def _mask_tokens(
    ids: torch.Tensor,
    special: torch.Tensor,
    tokenizer: Any,
    config: MlmConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    labels = ids.clone()
    chance = torch.full(ids.shape, config.mask_probability)
    chance[special] = 0.0
    chosen = torch.bernoulli(chance, generator=gen).bool()
    labels[~chosen] = -100
    masked = ids.clone()
    to_mask = torch.bernoulli(torch.full(ids.shape, 0.8), generator=gen).bool() & chosen
    masked[to_mask] = int(tokenizer.mask_token_id)
    to_random = torch.bernoulli(torch.full(ids.shape, 0.5), generator=gen).bool()
    to_random &= chosen & ~to_mask
    masked[to_random] = torch.randint(len(tokenizer), ids.shape, generator=gen)[to_random]
    return masked, labels


def mlm_adapt(
    encoder: nn.Module, tokenizer: Any, texts: Sequence[str], config: MlmConfig
) -> list[float]:
    """Train ``encoder`` in place with masked-token prediction on ``texts``.

    Returns:
        The loss of every step.

    Raises:
        ConfigError: The tokenizer has no mask token or there are no texts.
    """
    if config.steps <= 0:
        return []
    if tokenizer.mask_token_id is None or not texts:
        raise ConfigError("mlm", "needs a tokenizer with [MASK] and some texts", "")
    backbone: Any = encoder  # a transformers model
    head = _MlmHead(backbone.get_input_embeddings(), int(backbone.config.hidden_size))
    params = [p for p in encoder.parameters() if p.requires_grad]
    params += [p for n, p in head.named_parameters() if not n.startswith("embeddings.")]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    encoder.train()
    head.train()
    for _ in range(config.steps):
        batch = tokenizer(
            rng.sample(list(texts), min(config.batch_size, len(texts))),
            padding=True,
            truncation=True,
            max_length=config.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special = batch.pop("special_tokens_mask").bool() | (batch["attention_mask"] == 0)
        masked, labels = _mask_tokens(batch["input_ids"], special, tokenizer, config, gen)
        batch["input_ids"] = masked
        hidden = encoder(**batch).last_hidden_state
        logits = head(hidden)
        if (labels != -100).any():
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
    encoder.eval()
    return losses

"""Train, save and evaluate the BiLSTM-CRF named-entity tagger.

Training uses AdamW, gradient-norm clipping, dropout, length-bucketed shuffled batches, fixed
seeds and early stopping on the development set's entity F1; the best epoch's weights are
kept. A trained model is a folder: ``card.json`` (a :class:`~insightray.models.ModelCard`),
``weights.safetensors`` (float16) and ``vocab.json`` (a
:class:`~insightray.models.text.ner_encoding.NerVocab`); :mod:`insightray.engine.ner` loads
it and predicts tags.

Example:
    >>> train = read_conll("ncbi_disease/train.tsv")  # doctest: +SKIP
    >>> dev = read_conll("ncbi_disease/devel.tsv")  # doctest: +SKIP
    >>> result = train_ner(train, dev, "runs/ner", NerTrainConfig(epochs=20))  # doctest: +SKIP
    >>> from insightray.engine.ner import load_ner_model
    >>> loaded = load_ner_model(result.card_path)  # doctest: +SKIP
    >>> evaluate_ner(loaded, dev).f1  # doctest: +SKIP
    0.85
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from insightray.engine.ner import (
    CARD_FILE,
    MODEL_NAME,
    VOCAB_FILE,
    LoadedNer,
    predict_tags,
)
from insightray.engine.weights import write_model
from insightray.errors import ConfigError
from insightray.models import ModelCard, Preprocessing, create_model
from insightray.models.text import BiLstmCrf, BiLstmCrfConfig
from insightray.models.text.ner_encoding import (
    EncodedSentence,
    NerEncoder,
    NerVocab,
    TaggedSentence,
)
from insightray.training.metrics.entities import EntityScores, entity_scores
from insightray.training.proximal import anchor_of, proximal_term
from insightray.training.runtime import make_run_dir, seed_everything, set_threads

__all__ = [
    "NerLocalFit",
    "NerTrainConfig",
    "NerTrainResult",
    "build_tagger",
    "evaluate_ner",
    "save_ner_model",
    "train_local_epochs",
    "train_ner",
]


@dataclass(frozen=True)
class NerTrainConfig:
    """How to train a BiLSTM-CRF (model sizes, optimiser, schedule).

    Attributes:
        epochs: Most epochs. patience: Stop after this many epochs without a better dev F1.
        max_minutes: Also stop once an epoch ends after this much training time.
        batch_size: Sentences per step. lr: AdamW learning rate, divided by
            ``1 + lr_decay * (epoch - 1)`` in later epochs. weight_decay: AdamW decay.
        clip: Gradient-norm clip. seed: Seeds Python, NumPy and torch. threads: torch CPU threads.
        word_dim, hidden, char_filters, dropout, word_dropout, piece_dim: Model sizes, see
            :class:`~insightray.models.text.BiLstmCrfConfig`.
        min_word_count: Rarer training words share the unknown id.
        version: Version written on the card. command: How the run was started, for the card.
        progress: Show a progress bar on stderr.
    """

    epochs: int = 40
    patience: int = 8
    max_minutes: float | None = None
    batch_size: int = 32
    lr: float = 2e-3
    lr_decay: float = 0.05
    weight_decay: float = 0.0
    clip: float = 5.0
    seed: int = 13
    threads: int | None = None
    word_dim: int = 100
    hidden: int = 150
    char_filters: int = 50
    dropout: float = 0.5
    word_dropout: float = 0.05
    piece_dim: int = 64
    min_word_count: int = 1
    version: str = "1.0.0"
    command: str = ""
    progress: bool = True


@dataclass(frozen=True)
class NerTrainResult:
    """What :func:`train_ner` produced: the card path, best dev scores and per-epoch history."""

    card_path: Path
    dev: EntityScores
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _batches(
    encoded: Sequence[EncodedSentence], size: int, generator: random.Random
) -> list[list[int]]:
    """Shuffled batches of similar-length sentences (sorted within chunks of 50 batches)."""
    order = list(range(len(encoded)))
    generator.shuffle(order)
    batches: list[list[int]] = []
    chunk = size * 50
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(encoded[i]))
        batches += [part[i : i + size] for i in range(0, len(part), size)]
    generator.shuffle(batches)
    return batches


def _optimiser(
    model: torch.nn.Module, config: NerTrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its per-epoch decay ``lr / (1 + lr_decay * epochs_done)``."""
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda done: 1.0 / (1.0 + config.lr_decay * done)
    )
    return optimiser, schedule


def _train_epoch(
    model: BiLstmCrf,
    encoder: NerEncoder,
    encoded: Sequence[EncodedSentence],
    tag_ids: Sequence[torch.Tensor],
    optimiser: torch.optim.Optimizer,
    config: NerTrainConfig,
    generator: random.Random,
    anchor: list[torch.Tensor] | None = None,
    proximal_mu: float = 0.0,
) -> tuple[float, int]:
    """One pass over the sentences (FedProx's term when ``anchor``); the loss sum and steps."""
    model.train()
    total, steps = 0.0, 0
    for batch in _batches(encoded, config.batch_size, generator):
        inputs = encoder.collate([encoded[i] for i in batch])
        gold = torch.nn.utils.rnn.pad_sequence([tag_ids[i] for i in batch], True)
        loss = model.loss(inputs, gold)
        if anchor:
            loss = loss + proximal_term(model, anchor, proximal_mu)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimiser.step()
        total, steps = total + loss.item(), steps + 1
    return total, steps


@dataclass(frozen=True)
class NerLocalFit:
    """What :func:`train_local_epochs` did: optimiser steps, sentences, mean loss."""

    steps: int
    sentences: int
    loss: float


def train_local_epochs(
    model: BiLstmCrf,
    encoder: NerEncoder,
    sentences: Sequence[TaggedSentence],
    config: NerTrainConfig,
    *,
    epochs: int,
    proximal_mu: float = 0.0,
) -> NerLocalFit:
    """Train ``model`` in place for ``epochs`` passes over ``sentences`` (one federated round).

    The epochs of :func:`train_ner` (same batches, loss, clipping, AdamW and per-epoch decay)
    from the given weights, with a fresh optimiser and no development-set selection; with
    ``proximal_mu > 0`` each step adds FedProx's proximal term against the starting weights.
    Words outside ``encoder``'s vocabulary are unknown words (their characters and WordPieces
    still reach the model).

    Example:
        >>> config = NerTrainConfig()
        >>> fit = train_local_epochs(model, encoder, sentences, config, epochs=1)  # doctest: +SKIP
    """
    generator = random.Random(config.seed)
    encoded = [encoder.encode(s.words) for s in sentences]
    tag_ids = [torch.tensor(encoder.tag_ids(s.tags)) for s in sentences]
    optimiser, schedule = _optimiser(model, config)
    anchor = anchor_of(model) if proximal_mu > 0 else None
    total, steps = 0.0, 0
    for _ in range(epochs):
        epoch_total, epoch_steps = _train_epoch(
            model, encoder, encoded, tag_ids, optimiser, config, generator, anchor, proximal_mu
        )
        schedule.step()
        total, steps = total + epoch_total, steps + epoch_steps
    return NerLocalFit(steps, len(sentences), total / max(steps, 1))


def evaluate_ner(loaded: LoadedNer, sentences: Sequence[TaggedSentence]) -> EntityScores:
    """Exact-span entity scores of the tagger on gold sentences."""
    predicted = predict_tags(loaded, [s.words for s in sentences])
    return entity_scores([s.tags for s in sentences], predicted)


def build_tagger(
    vocab: NerVocab, config: NerTrainConfig, describe_data: tuple[str, str] = ("", "")
) -> LoadedNer:
    """A freshly initialised BiLSTM-CRF for ``vocab`` with its encoder and card.

    Args:
        vocab: Words, characters, labels and gazetteer terms the network reads.
        config: Model sizes (and the command written on the card).
        describe_data: ``(training_data, data_licence)`` text for the card.
    """
    encoder = NerEncoder(vocab)
    architecture = BiLstmCrfConfig(
        labels=vocab.labels,
        word_vocab_size=len(vocab.words),
        char_vocab_size=len(vocab.chars),
        gazetteer_features=encoder.gazetteer_width,
        word_dim=config.word_dim,
        char_filters=config.char_filters,
        hidden=config.hidden,
        dropout=config.dropout,
        word_dropout=config.word_dropout,
        piece_dim=config.piece_dim,
    )
    model = create_model(MODEL_NAME, labels=vocab.labels, **architecture.to_kwargs())
    assert isinstance(model, BiLstmCrf)
    card = ModelCard(
        MODEL_NAME,
        "ner",
        config.version,
        vocab.labels,
        (1, 1),
        preprocessing=Preprocessing(
            model_kwargs=architecture.to_kwargs(), extra={"vocab": VOCAB_FILE}
        ),
        training_data=describe_data[0],
        data_licence=describe_data[1],
        notes="Words come from insightray.models.text.split_words; input_size is unused for "
        f"text. Trained with: {config.command or 'train_ner()'}",
    )
    return LoadedNer(model, encoder, card)


def train_ner(
    train: Sequence[TaggedSentence],
    dev: Sequence[TaggedSentence],
    out_dir: str | Path,
    config: NerTrainConfig | None = None,
    *,
    terms: Mapping[str, Iterable[str]] | None = None,
    describe_data: tuple[str, str] = ("", ""),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> NerTrainResult:
    """Train a BiLSTM-CRF on ``train``, select the epoch by F1 on ``dev``, save it to ``out_dir``.

    Args:
        train: Training sentences. dev: Development sentences (model selection only).
        out_dir: Folder for ``card.json``, ``weights.safetensors`` and ``vocab.json``.
        config: Training settings; defaults to :class:`NerTrainConfig`.
        terms: Gazetteer terms by type for the gazetteer-match features.
        describe_data: ``(training_data, data_licence)`` text for the card.
        on_epoch: Called with each epoch's record (loss, dev scores, seconds).

    Raises:
        ConfigError: ``train`` or ``dev`` is empty or holds no entity.
    """
    config = config or NerTrainConfig()
    if not train or not dev:
        raise ConfigError("train ner", "the training or development set is empty", "check files")
    set_threads(config.threads)
    seed_everything(config.seed)
    generator = random.Random(config.seed)
    vocab = NerVocab.build(
        train, terms=terms, pieces=config.piece_dim > 0, min_word_count=config.min_word_count
    )
    if len(vocab.labels) < 3:
        raise ConfigError("train ner", "the training set holds no entity", "check the tags")
    loaded = build_tagger(vocab, config, describe_data)
    model, encoder, card = loaded.model, loaded.encoder, loaded.card
    encoded = [encoder.encode(s.words) for s in train]
    tag_ids = [torch.tensor(encoder.tag_ids(s.tags)) for s in train]
    optimiser, schedule = _optimiser(model, config)
    best_state, best_scores, best_epoch, stale = None, None, 0, 0
    history: list[dict[str, float]] = []
    started = time.monotonic()
    epoch = 0
    with Progress(console=Console(stderr=True), transient=True, disable=not config.progress) as bar:
        task = bar.add_task("Training NER", total=config.epochs)
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.monotonic()
            total, steps = _train_epoch(
                model, encoder, encoded, tag_ids, optimiser, config, generator
            )
            schedule.step()
            scores = evaluate_ner(loaded, dev)
            record = {
                "epoch": float(epoch),
                "loss": total / max(steps, 1),
                "dev_precision": scores.precision,
                "dev_recall": scores.recall,
                "dev_f1": scores.f1,
                "seconds": time.monotonic() - epoch_start,
            }
            history.append(record)
            if on_epoch:
                on_epoch(record)
            bar.update(task, advance=1, description=f"Training NER (dev F1 {scores.f1:.3f})")
            if best_scores is None or scores.f1 > best_scores.f1:
                best_state, best_scores, best_epoch, stale = (
                    copy.deepcopy(model.state_dict()),
                    scores,
                    epoch,
                    0,
                )
            else:
                stale += 1
            out_of_time = (
                config.max_minutes and time.monotonic() - started > 60 * config.max_minutes
            )
            if stale >= config.patience or out_of_time:
                break
    assert best_state is not None and best_scores is not None
    model.load_state_dict(best_state)
    metrics = {
        "devel_precision": round(best_scores.precision, 4),
        "devel_recall": round(best_scores.recall, 4),
        "devel_f1": round(best_scores.f1, 4),
    }
    card = dataclasses.replace(card, metrics=metrics)
    save_ner_model(LoadedNer(model, encoder, card), out_dir)
    return NerTrainResult(
        Path(out_dir) / CARD_FILE,
        best_scores,
        best_epoch,
        epoch,
        time.monotonic() - started,
        history,
    )


def save_ner_model(loaded: LoadedNer, out_dir: str | Path) -> ModelCard:
    """Write weights (float16 safetensors), vocab and card into ``out_dir``; return the card."""
    folder = make_run_dir(out_dir)
    loaded.encoder.vocab.save(folder / VOCAB_FILE)
    return write_model(folder, loaded.model, loaded.card)

"""Fine-tuning the BERT-style token classifier (the comparison to the BiLSTM-CRF) and scoring it.

The packaged all-MiniLM-L6-v2 is fine-tuned for BIO tagging with first-subword labels (later
subwords of a word are ignored in the loss). Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is
set before ``transformers`` loads anything. The model, its loading and its prediction are
:mod:`insightray.models.text.token_classifier`.

Example:
    >>> from insightray.models.text.token_classifier import load_token_classifier
    >>> result = train_token_classifier(train, dev, "runs/bert-ner")  # doctest: +SKIP
    >>> model = load_token_classifier("runs/bert-ner")  # doctest: +SKIP
    >>> evaluate_token_classifier(model, dev).f1  # doctest: +SKIP
    0.8
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from insightray.errors import ConfigError
from insightray.models import ModelCard, Preprocessing, save_card
from insightray.models.catalog import sha256_file
from insightray.models.text.ner_encoding import TaggedSentence, labels_of
from insightray.models.text.token_classifier import (
    TOKEN_CLASSIFIER_NAME,
    LoadedTokenClassifier,
    base_encoder_path,
    encode_words,
    predict_token_classifier,
)
from insightray.training.metrics.entities import EntityScores, entity_scores
from insightray.training.runtime import make_run_dir, seed_everything, set_threads

__all__ = ["BertNerConfig", "evaluate_token_classifier", "train_token_classifier"]


@dataclass(frozen=True)
class BertNerConfig:
    """Fine-tuning settings.

    Attributes:
        epochs: Passes over the training set (may be fractional, e.g. 1.5).
        batch_size: Sentences per step. lr: Peak AdamW learning rate (linear warm-up 10 %,
            then linear decay). max_length: Subwords per sentence (longer ones are cut; the
            cut words are tagged ``O``). seed: Python, NumPy and torch seed. threads: CPU threads.
        max_minutes: Stop training after this wall time (the last evaluated state is kept).
        command: How the run was started, for the card.
    """

    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 1e-4
    max_length: int = 192
    seed: int = 13
    threads: int | None = None
    max_minutes: float | None = None
    command: str = ""


def evaluate_token_classifier(
    loaded: LoadedTokenClassifier, sentences: Sequence[TaggedSentence]
) -> EntityScores:
    """Exact-span entity scores of the classifier on gold sentences."""
    predicted = predict_token_classifier(loaded, [s.words for s in sentences])
    return entity_scores([s.tags for s in sentences], predicted)


def train_token_classifier(
    train: Sequence[TaggedSentence],
    dev: Sequence[TaggedSentence],
    out_dir: str | Path,
    config: BertNerConfig | None = None,
    *,
    describe_data: tuple[str, str] = ("", ""),
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[ModelCard, EntityScores]:
    """Fine-tune MiniLM for token classification; keep the best dev-F1 evaluation; save it.

    Args:
        train: Training sentences. dev: Development sentences (model selection only).
        out_dir: Folder for the Hugging Face files and ``card.json``.
        config: Fine-tuning settings; defaults to :class:`BertNerConfig`.
        describe_data: ``(training_data, data_licence)`` text for the card.
        on_epoch: Called with each evaluation's record (epoch, steps, dev F1, loss).

    Returns:
        The written card and the best development scores.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    config = config or BertNerConfig()
    if not train or not dev:
        raise ConfigError("train ner", "the training or development set is empty", "check files")
    set_threads(config.threads)
    seed_everything(config.seed)
    generator = random.Random(config.seed)
    labels = labels_of(train)
    index = {label: i for i, label in enumerate(labels)}
    base = base_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        local_files_only=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id=index,
    )
    card = ModelCard(
        TOKEN_CLASSIFIER_NAME,
        "ner",
        "1.0.0",
        labels,
        (1, config.max_length),
        preprocessing=Preprocessing(
            extra={"max_length": config.max_length, "labelling": "first-subword"}
        ),
        training_data=describe_data[0],
        data_licence=describe_data[1],
        notes=f"all-MiniLM-L6-v2 fine-tuned. Trained with: {config.command or 'python API'}",
    )
    loaded = LoadedTokenClassifier(model, tokenizer, card)
    steps_per_epoch = (len(train) + config.batch_size - 1) // config.batch_size
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    warmup = max(1, total_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup))),
    )
    deadline = time.monotonic() + 60 * config.max_minutes if config.max_minutes else None
    best: tuple[EntityScores, dict[str, torch.Tensor]] | None = None
    step, epoch = 0, 0
    while step < total_steps:
        epoch += 1
        order = sorted(range(len(train)), key=lambda i: len(train[i].words))
        batches = [
            order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)
        ]
        generator.shuffle(batches)
        model.train()
        out_of_time = False
        for batch in batches:
            sentences = [train[i] for i in batch]
            tags = [[index[t] for t in s.tags] for s in sentences]
            inputs, _ = encode_words(
                tokenizer, [s.words for s in sentences], config.max_length, tags
            )
            loss = model(**inputs).loss
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            out_of_time = deadline is not None and time.monotonic() > deadline
            if step >= total_steps or out_of_time:
                break
        scores = evaluate_token_classifier(loaded, dev)
        record = {"epoch": epoch, "steps": step, "dev_f1": scores.f1, "loss": loss.item()}
        if on_epoch:
            on_epoch({key: float(value) for key, value in record.items()})
        if best is None or scores.f1 > best[0].f1:
            best = (scores, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if out_of_time:
            break
    assert best is not None
    model.load_state_dict(best[1])
    folder = make_run_dir(out_dir)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    metrics = {"devel_f1": round(best[0].f1, 4), "epochs": round(step / steps_per_epoch, 2)}
    card = dataclasses.replace(
        card,
        weights_file="model.safetensors",
        weights_sha256=sha256_file(folder / "model.safetensors"),
        metrics=metrics,
    )
    save_card(card, folder / "card.json")
    return card, best[0]

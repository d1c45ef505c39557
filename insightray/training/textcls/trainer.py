"""Fine-tuning a BERT-family text classifier progressively, and evaluating it.

Three phases by default (all configurable through :class:`Phase`):

1. the head alone, encoder frozen (5 epochs); the frozen encoder's pooled features are
   computed once and cached, so this phase costs one forward pass;
2. the top 4 encoder layers unfrozen at a reduced learning rate (3 epochs);
3. everything, with layer-wise learning-rate decay ``lr_layer = lr * alpha ** (L - layer)``
   (embeddings are layer 0, the top layer ``L`` gets ``lr``).

Each phase warms up linearly over the first 10 % of its steps, then follows cosine annealing
with hard restarts. Before fine-tuning, frequent domain words can be added to the vocabulary
and the encoder can be adapted with masked-language modelling on a local corpus
(:mod:`insightray.training.textcls.adapt`). The best epoch on the validation split is kept;
the test split is only scored at the end. The result is saved compactly (deltas against the
packaged base encoder) with a model card that records the data, split seed and metrics.

Example:
    >>> config = TextClsConfig(data_licence="none stated (Kaggle dataset)")
    >>> result = train_textcls("Symptom2Disease.csv", "runs/textcls", config)  # doctest: +SKIP
    >>> round(result.test.accuracy, 3)  # doctest: +SKIP
    0.95
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from insightray.errors import ConfigError
from insightray.models.card import ModelCard, Preprocessing, Thresholds
from insightray.models.catalog import sha256_file
from insightray.models.text.bert_classifier import (
    DEFAULT_ENCODER,
    MODEL_NAME,
    TASK,
    BertClassifier,
    load_encoder,
    load_tokenizer,
    predict_proba,
    resolve_encoder,
    save_classifier,
)
from insightray.training.metrics.classification import ClassificationReport, tune_thresholds
from insightray.training.runtime import make_run_dir, seed_everything, torch_threads
from insightray.training.textcls.adapt import (
    MlmConfig,
    expand_vocabulary,
    mine_domain_terms,
    mlm_adapt,
)
from insightray.training.textcls.data import (
    TextDataset,
    load_corpus,
    load_text_csv,
    stratified_split,
)
from insightray.training.textcls.evaluate import report_for
from insightray.training.textcls.schedule import (
    Phase,
    default_phases,
    lr_factor,
    parameter_groups,
    set_trainable,
)

__all__ = [
    "EpochLog",
    "Phase",
    "TextClsConfig",
    "TrainResult",
    "default_phases",
    "lr_factor",
    "parameter_groups",
    "train_textcls",
]

Log = Callable[[str], None]


@dataclass(frozen=True)
class TextClsConfig:
    """Everything :func:`train_textcls` needs besides the data and the output folder.

    Attributes:
        encoder: Packaged encoder name or local Hugging Face checkpoint folder.
        text_column / label_column / label_columns: CSV columns (see ``load_text_csv``).
        fractions: Train/validation/test shares of the stratified split.
        seed: Seed of the split, the head initialisation and batch order.
        max_length: Token limit per text.
        batch_size: Texts per optimiser step.
        pooling: ``"mean"`` or ``"cls"``.
        head_hidden: Width of the head's hidden layer.
        phases: The fine-tuning stages.
        warmup_ratio: Share of each phase's steps spent warming up.
        cosine_cycles: Cosine cycles after warm-up (1 = no restart).
        weight_decay: AdamW decay (never on biases, norms or embeddings).
        vocab_terms: Domain words to mine from the training texts and add (0 = none).
        extra_terms: Words to add regardless.
        mlm / mlm_corpus / mlm_limit: Optional MLM adaptation on a local corpus first.
        storage: ``"delta"`` (changes against the base encoder) or ``"full"`` (fp16 copy).
        delta_dtype: ``"int8"`` or ``"float16"`` deltas.
        num_threads: Torch CPU threads while training (``None`` leaves the setting alone).
        version / training_data / data_licence / notes: Copied to the model card.
    """

    encoder: str = DEFAULT_ENCODER
    text_column: str = "text"
    label_column: str | None = None
    label_columns: tuple[str, ...] | None = None
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 13
    max_length: int = 128
    batch_size: int = 16
    pooling: str = "mean"
    head_hidden: int = 256
    phases: tuple[Phase, ...] = field(default_factory=default_phases)
    warmup_ratio: float = 0.1
    cosine_cycles: int = 2
    weight_decay: float = 0.01
    vocab_terms: int = 0
    extra_terms: tuple[str, ...] = ()
    mlm: MlmConfig = field(default_factory=MlmConfig)
    mlm_corpus: str | None = None
    mlm_limit: int = 5000
    storage: str = "delta"
    delta_dtype: str = "int8"
    num_threads: int | None = 1
    version: str = "1.0.0"
    training_data: str = ""
    data_licence: str = ""
    notes: str = ""


@dataclass(frozen=True)
class EpochLog:
    """One epoch: phase, mean training loss, validation scores and seconds taken."""

    phase: str
    epoch: int
    loss: float
    val_accuracy: float
    val_macro_f1: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """What training produced: the saved card and folder, reports and the epoch log."""

    card: ModelCard
    folder: Path
    val: ClassificationReport
    test: ClassificationReport
    history: tuple[EpochLog, ...]
    added_terms: tuple[str, ...]
    seconds: float


@dataclass
class _Run:
    """Mutable state shared by the phases of one training run."""

    model: BertClassifier
    tokenizer: Any
    train: TextDataset
    val: TextDataset
    config: TextClsConfig
    log: Log
    generator: torch.Generator
    history: list[EpochLog] = field(default_factory=list)
    best_score: tuple[float, float] = (-1.0, -1.0)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.config.max_length,
                return_tensors="pt",
            )
        )

    def targets(self, data: TextDataset, rows: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(data.targets[rows.numpy()])

    def validate(self, phase: Phase, epoch: int, loss: float, started: float) -> None:
        probs = predict_proba(self.model, self.tokenizer, self.val.texts, self.config.max_length)
        report = report_for(self.val, probs, None)
        seconds = round(time.perf_counter() - started, 1)
        entry = EpochLog(phase.name, epoch, loss, report.accuracy, report.macro_f1, seconds)
        self.history.append(entry)
        self.log(
            f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {loss:.4f}, val accuracy "
            f"{report.accuracy:.4f}, macro-F1 {report.macro_f1:.4f} ({entry.seconds:.0f} s)"
        )
        score = (report.macro_f1, report.accuracy)
        if score >= self.best_score:  # ties go to the later, longer-trained epoch
            self.best_score = score
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _batches(count: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    return [order[i : i + size] for i in range(0, count, size)]


def _scheduler(
    optimiser: torch.optim.Optimizer, total: int, config: TextClsConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, total, config.warmup_ratio, config.cosine_cycles)
    )


def _run_head_phase(run: _Run, phase: Phase) -> None:
    """Encoder frozen: pool every training text once, then train the head on the cache."""
    model, config = run.model, run.config
    set_trainable(model, 0)
    model.encoder.eval()
    with torch.inference_mode():
        chunks = [
            model.features(**run.encode([run.train.texts[i] for i in rows]))
            for rows in _chunks(len(run.train), 64)
        ]
    features = torch.cat(chunks).clone()
    optimiser = torch.optim.AdamW(parameter_groups(model, phase, config.weight_decay))
    steps = phase.epochs * math.ceil(len(run.train) / config.batch_size)
    scheduler = _scheduler(optimiser, steps, config)
    for epoch in range(phase.epochs):
        started, losses = time.perf_counter(), []
        model.head.train()
        for rows in _batches(len(run.train), config.batch_size, run.generator):
            loss = model.loss(model.head(features[rows]), run.targets(run.train, rows))
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        run.validate(phase, epoch, float(np.mean(losses)), started)


def _chunks(count: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def _run_encoder_phase(run: _Run, phase: Phase) -> None:
    model, config = run.model, run.config
    set_trainable(model, phase.unfreeze)
    groups = parameter_groups(model, phase, config.weight_decay)
    optimiser = torch.optim.AdamW(groups)
    steps = phase.epochs * math.ceil(len(run.train) / config.batch_size)
    scheduler = _scheduler(optimiser, steps, config)
    trainable = [p for group in groups for p in group["params"]]
    for epoch in range(phase.epochs):
        started, losses = time.perf_counter(), []
        model.train()
        for rows in _batches(len(run.train), config.batch_size, run.generator):
            inputs = run.encode([run.train.texts[i] for i in rows])
            loss = model.loss(model(**inputs), run.targets(run.train, rows))
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        run.validate(phase, epoch, float(np.mean(losses)), started)


def _prepare_model(config: TextClsConfig, data: TextDataset) -> tuple[BertClassifier, Any, Path]:
    encoder_dir = resolve_encoder(config.encoder)
    tokenizer = load_tokenizer(encoder_dir)
    model = BertClassifier(
        load_encoder(encoder_dir),
        len(data.labels),
        pooling=config.pooling,
        head_hidden=config.head_hidden,
        multi_label=data.multi_label,
    )
    return model, tokenizer, encoder_dir


def train_textcls(
    data_path: str | Path,
    out_dir: str | Path,
    config: TextClsConfig | None = None,
    log: Log = print,
) -> TrainResult:
    """Split the CSV, fine-tune progressively, pick the best epoch on validation, save.

    Args:
        data_path: CSV with ``text`` and label column(s).
        out_dir: Folder for ``classifier.safetensors`` and ``card.json``.
        config: Settings; defaults to :class:`TextClsConfig`.
        log: Receives one line per step worth reporting.

    Returns:
        The card, validation and test reports and the epoch log.

    Raises:
        ConfigError: Invalid settings or too few examples for the split.
    """
    config = config or TextClsConfig()
    if config.storage not in ("delta", "full"):
        raise ConfigError("storage", f"unknown {config.storage!r}", "use 'delta' or 'full'")
    started = time.perf_counter()
    with torch_threads(config.num_threads):
        seed_everything(config.seed)
        data = load_text_csv(
            data_path, config.text_column, config.label_column, config.label_columns
        )
        parts = stratified_split(data, config.fractions, config.seed)
        if not parts.train or not parts.val:
            raise ConfigError(str(data_path), "too few examples to split", "add examples")
        train, val, test = (data.subset(p) for p in (parts.train, parts.val, parts.test))
        log(f"{len(data.labels)} labels; train {len(train)}, val {len(val)}, test {len(test)}")
        model, tokenizer, encoder_dir = _prepare_model(config, data)
        base = None
        if config.storage == "delta":
            base = {k: v.clone() for k, v in model.state_dict().items() if k[:8] == "encoder."}
        mined = mine_domain_terms(train.texts, tokenizer, config.vocab_terms)
        added = expand_vocabulary(model.encoder, tokenizer, [*config.extra_terms, *mined])
        if added:
            log(f"vocabulary: added {len(added)} terms ({', '.join(added[:8])}, ...)")
        if config.mlm.steps and config.mlm_corpus:
            corpus = load_corpus(config.mlm_corpus, config.mlm_limit)
            losses = mlm_adapt(model.encoder, tokenizer, corpus, config.mlm)
            log(f"MLM: {len(losses)} steps on {len(corpus)} texts, last loss {losses[-1]:.3f}")
        run = _Run(model, tokenizer, train, val, config, log, torch.Generator())
        run.generator.manual_seed(config.seed)
        for phase in config.phases:
            if phase.epochs > 0:
                (_run_head_phase if phase.unfreeze == 0 else _run_encoder_phase)(run, phase)
        if run.best_state:
            model.load_state_dict(run.best_state)
        model.eval()
        val_probs = predict_proba(model, tokenizer, val.texts, config.max_length)
        thresholds = tune_thresholds(val.targets, val_probs) if data.multi_label else None
        val_report = report_for(val, val_probs, thresholds)
        test_probs = predict_proba(model, tokenizer, test.texts, config.max_length)
        test_report = report_for(test, test_probs, thresholds) if len(test) else val_report
        seconds = time.perf_counter() - started
        card = _card(config, data, data_path, encoder_dir, added, thresholds)
        metrics = {
            "val_accuracy": val_report.accuracy,
            "val_macro_f1": val_report.macro_f1,
            "test_accuracy": test_report.accuracy,
            "test_macro_f1": test_report.macro_f1,
            "test_examples": float(len(test)),
            "train_examples": float(len(train)),
            "train_seconds": round(seconds, 1),
        }
        card = dataclasses.replace(card, metrics={k: round(v, 4) for k, v in metrics.items()})
        folder = make_run_dir(out_dir)
        card = save_classifier(model, folder, card, base_state=base, delta_dtype=config.delta_dtype)
        if config.storage == "full":
            model.encoder.config.save_pretrained(str(folder / "encoder"))
            tokenizer.save_pretrained(str(folder / "encoder"))
        log(f"test accuracy {test_report.accuracy:.4f}, macro-F1 {test_report.macro_f1:.4f}")
        return TrainResult(
            card, folder, val_report, test_report, tuple(run.history), tuple(added), seconds
        )


def _card(
    config: TextClsConfig,
    data: TextDataset,
    data_path: str | Path,
    encoder_dir: Path,
    added: Sequence[str],
    thresholds: Sequence[float] | None,
) -> ModelCard:
    encoder_weights = next(encoder_dir.glob("model.safetensors"), None)
    preprocessing: dict[str, Any] = {
        "encoder": config.encoder if config.storage == "delta" else "encoder",
        "encoder_sha256": sha256_file(encoder_weights) if encoder_weights else None,
        "pooling": config.pooling,
        "head_hidden": config.head_hidden,
        "max_length": config.max_length,
        "multi_label": data.multi_label,
        "added_tokens": list(added),
        "split": {
            "seed": config.seed,
            "fractions": list(config.fractions),
            "method": "stratified by label, identical texts kept together",
            "text_column": config.text_column,
            "label_column": config.label_column,
            "label_columns": list(config.label_columns) if config.label_columns else None,
            "data_sha256": sha256_file(Path(data_path)),
        },
        "phases": [asdict(phase) for phase in config.phases],
    }
    return ModelCard(
        name=MODEL_NAME,
        task=TASK,
        version=config.version,
        labels=data.labels,
        input_size=(1, config.max_length),
        preprocessing=Preprocessing.from_dict(preprocessing),
        thresholds=Thresholds(extra=dict(zip(data.labels, thresholds, strict=True)))
        if thresholds
        else Thresholds(),
        training_data=config.training_data or Path(data_path).name,
        data_licence=config.data_licence,
        notes=config.notes,
    )

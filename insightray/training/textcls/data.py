"""Data for text classification: CSV loading, a leak-free stratified split, an MLM corpus.

A CSV has a ``text`` column and either one label column (single-label; by default the column
named ``label``) or several 0/1 columns (multi-label, one per class). Identical texts (after
lower-casing and collapsing spaces) always land in the same part of a split, so a duplicated
example can never be trained on and then scored as "held out".

Example:
    >>> data = load_text_csv("Symptom2Disease.csv")  # doctest: +SKIP
    >>> parts = stratified_split(data, (0.8, 0.1, 0.1), seed=13)  # doctest: +SKIP
    >>> len(parts.train), len(parts.val), len(parts.test)  # doctest: +SKIP
    (960, 120, 120)
"""

from __future__ import annotations

import csv
import random
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError, EmptyFileError, InputNotFoundError

__all__ = [
    "SplitIndices",
    "TextDataset",
    "load_corpus",
    "load_text_csv",
    "normalise_text",
    "stratified_split",
]

_LABEL_NAMES = ("label", "labels", "class", "category", "disease")


@dataclass(frozen=True)
class TextDataset:
    """Texts with their targets.

    Attributes:
        texts: The input texts.
        labels: Class names in target order.
        targets: ``(N,)`` class ids (single-label) or ``(N, C)`` 0/1 (multi-label).
        multi_label: Which of the two.
    """

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    targets: NDArray[np.int64]
    multi_label: bool

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextDataset:
        """The examples at ``indices``, in that order."""
        rows = np.asarray(indices, dtype=np.int64)
        return TextDataset(
            tuple(self.texts[i] for i in rows), self.labels, self.targets[rows], self.multi_label
        )

    def with_labels(self, labels: Sequence[str]) -> TextDataset:
        """Re-index single-label targets to ``labels`` (a trained model's label order).

        Raises:
            ConfigError: A class here is unknown to ``labels``.
        """
        if tuple(labels) == self.labels:
            return self
        unknown = sorted(set(self.labels) - set(labels))
        if unknown:
            raise ConfigError("labels", f"unknown to the model: {', '.join(unknown)}", "")
        position = {label: i for i, label in enumerate(labels)}
        if self.multi_label:
            targets = np.zeros((len(self), len(labels)), dtype=np.int64)
            for old, label in enumerate(self.labels):
                targets[:, position[label]] = self.targets[:, old]
        else:
            remap = np.array([position[label] for label in self.labels], dtype=np.int64)
            targets = remap[self.targets]
        return TextDataset(self.texts, tuple(labels), targets, self.multi_label)


def normalise_text(text: str) -> str:
    """Lower-case and collapse whitespace: the key that groups duplicate texts."""
    return " ".join(text.lower().split())


def load_text_csv(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = None,
    label_columns: Sequence[str] | None = None,
) -> TextDataset:
    """Read a CSV of texts and labels.

    Args:
        path: The CSV file (UTF-8, header row).
        text_column: Column holding the text.
        label_column: One label column (single-label). Default: ``label`` (or ``labels``,
            ``class``, ``category``, ``disease``) when present.
        label_columns: Several 0/1 columns (multi-label). Default when no label column
            exists: every other column whose values are all 0 or 1.

    Raises:
        InputNotFoundError: The file does not exist.
        EmptyFileError: No rows.
        ConfigError: Columns are missing or a multi-label value is not 0/1.

    Example:
        >>> load_text_csv("notes.csv", label_columns=["fever", "cough"])  # doctest: +SKIP
    """
    source = Path(path)
    if not source.is_file():
        raise InputNotFoundError(str(source), "the CSV file does not exist", "check the path")
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = [row for row in reader if (row.get(text_column) or "").strip()]
    if text_column not in columns:
        raise ConfigError(str(source), f"no {text_column!r} column", "name the text column")
    if not rows:
        raise EmptyFileError(str(source), "no rows with text", "add examples")
    texts = tuple(row[text_column].strip() for row in rows)
    if label_columns is None:
        label_column = label_column or next((c for c in _LABEL_NAMES if c in columns), None)
    if label_column is not None and label_columns is None:
        if label_column not in columns:
            raise ConfigError(str(source), f"no {label_column!r} column", "name the label column")
        names = [row[label_column].strip() for row in rows]
        labels = tuple(sorted(set(names)))
        index = {label: i for i, label in enumerate(labels)}
        targets = np.array([index[name] for name in names], dtype=np.int64)
        return TextDataset(texts, labels, targets, multi_label=False)
    chosen = list(label_columns or [c for c in columns if c != text_column and _binary(rows, c)])
    missing = [c for c in chosen if c not in columns]
    if not chosen or missing:
        raise ConfigError(
            str(source), "no label column and no 0/1 label columns", "pass --label-column"
        )
    if not all(_binary(rows, c) for c in chosen):
        raise ConfigError(str(source), "multi-label columns must hold only 0 or 1", "fix them")
    targets = np.array([[int(row[c]) for c in chosen] for row in rows], dtype=np.int64)
    return TextDataset(texts, tuple(chosen), targets, multi_label=True)


def _binary(rows: Sequence[dict[str, str]], column: str) -> bool:
    return all((row.get(column) or "").strip() in ("0", "1") for row in rows)


@dataclass(frozen=True)
class SplitIndices:
    """Row indices of the three parts of a split."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


def stratified_split(
    data: TextDataset, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 13
) -> SplitIndices:
    """Split into train/validation/test, stratified by label, duplicates kept together.

    Each class's groups of identical texts are shuffled with ``seed`` and dealt to test, then
    validation, until each holds its share of that class's rows; the rest is training data.
    Multi-label rows are stratified by their rarest positive label.

    Raises:
        ConfigError: The fractions are negative or do not sum to 1.
    """
    if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError("split", f"fractions {fractions} must be >= 0 and sum to 1", "")
    strata = _strata(data)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(data.texts):
        groups[normalise_text(text)].append(i)
    by_stratum: dict[int, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        by_stratum[int(strata[members[0]])].append(members)
    rng = random.Random(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for stratum in sorted(by_stratum):
        bunch = sorted(by_stratum[stratum])
        rng.shuffle(bunch)
        total = sum(len(g) for g in bunch)
        want_test = round(total * fractions[2])
        want_val = round(total * fractions[1])
        taken = [0, 0]
        for members in bunch:
            if taken[1] < want_test:
                parts[2].extend(members)
                taken[1] += len(members)
            elif taken[0] < want_val:
                parts[1].extend(members)
                taken[0] += len(members)
            else:
                parts[0].extend(members)
    return SplitIndices(*(tuple(sorted(p)) for p in parts))


def _strata(data: TextDataset) -> NDArray[np.int64]:
    if not data.multi_label:
        return data.targets
    counts = data.targets.sum(axis=0)
    rarity = np.where(data.targets > 0, counts[None, :], np.iinfo(np.int64).max)
    keys = rarity.argmin(axis=1)
    keys[data.targets.sum(axis=1) == 0] = data.targets.shape[1]  # rows with no label at all
    strata: NDArray[np.int64] = keys.astype(np.int64)
    return strata


def load_corpus(path: str | Path, limit: int | None = None) -> list[str]:
    """Plain texts for MLM adaptation from a ``.txt`` (a text per line), a ``.csv`` (``text``
    column), or a ``.zip`` / folder of XML (MedQuAD: every ``Answer``, else all text).

    Raises:
        InputNotFoundError: The path does not exist.
        EmptyFileError: No text was found.

    Example:
        >>> texts = load_corpus("../shared/data/text/qa/medquad.zip", limit=2000)  # doctest: +SKIP
    """
    source = Path(path)
    if not source.exists():
        raise InputNotFoundError(str(source), "the corpus does not exist", "check the path")
    texts: list[str] = []
    for text in _corpus_texts(source):
        cleaned = " ".join(text.split())
        if len(cleaned) >= 20:
            texts.append(cleaned)
        if limit is not None and len(texts) >= limit:
            break
    if not texts:
        raise EmptyFileError(str(source), "no texts found", "give .txt, .csv, .zip or XML")
    return texts


def _corpus_texts(source: Path) -> Iterator[str]:
    if source.suffix == ".txt":
        yield from source.read_text(encoding="utf-8").splitlines()
    elif source.suffix == ".csv":
        with source.open(encoding="utf-8", newline="") as handle:
            yield from (row.get("text") or "" for row in csv.DictReader(handle))
    elif source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith(".xml"):
                    yield from _xml_texts(archive.read(name))
    elif source.is_dir():
        for file in sorted(source.rglob("*")):
            if file.suffix in (".txt", ".xml", ".csv"):
                yield from (
                    _xml_texts(file.read_bytes()) if file.suffix == ".xml" else _corpus_texts(file)
                )


def _xml_texts(payload: bytes) -> Iterator[str]:
    try:
        root = ElementTree.fromstring(payload)
    except ElementTree.ParseError:
        return
    answers = [node.text or "" for node in root.iter("Answer")]
    yield from answers if answers else ["".join(root.itertext())]

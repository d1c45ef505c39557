"""CoNLL-style ``token<TAB>tag`` files and BIO (IOB2) checks.

A file holds one word per line (first column the word, last column its tag) and a blank line
between sentences; ``-DOCSTART-`` lines are skipped. Tags are ``O``, ``B-TYPE`` or ``I-TYPE``
with any type names. :func:`repair_bio` turns an ``I-X`` that does not continue an ``X``
entity into ``B-X`` (this also converts IOB1 to IOB2). Sentences come back as
:class:`~insightray.models.text.ner_encoding.TaggedSentence`, the type the tagger's
vocabulary and encoder (:mod:`insightray.models.text.ner_encoding`) read.

Example:
    >>> sentences = read_conll("ncbi_disease/devel.tsv")  # doctest: +SKIP
    >>> len(sentences), sentences[0].tags[:3]  # doctest: +SKIP
    (923, ('O', 'O', 'O'))
    >>> repair_bio(["O", "I-Disease", "I-Disease"])
    ('O', 'B-Disease', 'I-Disease')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from insightray.errors import CorruptFileError, EmptyFileError, InputNotFoundError
from insightray.models.text.ner_encoding import TaggedSentence

__all__ = ["bio_errors", "read_conll", "repair_bio", "write_conll"]


def bio_errors(tags: Sequence[str]) -> list[int]:
    """Positions of ``I-X`` tags that do not follow ``B-X`` or ``I-X`` (IOB2 violations).

    Example:
        >>> bio_errors(["O", "I-A", "B-A", "I-B"])
        [1, 3]
    """
    errors = []
    previous = "O"
    for position, tag in enumerate(tags):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            errors.append(position)
        previous = tag
    return errors


def repair_bio(tags: Sequence[str]) -> tuple[str, ...]:
    """Turn every ``I-X`` that does not continue an ``X`` entity into ``B-X``.

    Example:
        >>> repair_bio(["I-A", "I-A", "O", "I-B"])
        ('B-A', 'I-A', 'O', 'B-B')
    """
    fixed = list(tags)
    for position in bio_errors(tags):
        fixed[position] = "B-" + fixed[position][2:]
    return tuple(fixed)


def read_conll(path: str | Path, *, repair: bool = True) -> list[TaggedSentence]:
    """Read a ``word<TAB>tag`` file into sentences.

    Args:
        path: The file; columns may be separated by tabs or spaces, the tag is the last one.
        repair: Fix IOB2 violations with :func:`repair_bio`; ``False`` raises on them instead.

    Raises:
        InputNotFoundError: The file cannot be read.
        EmptyFileError: The file holds no sentence.
        CorruptFileError: A line has no tag, a tag is not O/B-X/I-X, or (``repair=False``) a
            sentence breaks IOB2; the message gives the line number.
    """
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputNotFoundError(
            str(source), "the file cannot be read as UTF-8 text", "check the path"
        ) from error
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first_line = 1
    for number, line in enumerate([*lines, ""], start=1):
        columns = line.split("\t") if "\t" in line else line.split()
        if not columns or not line.strip() or columns[0] == "-DOCSTART-":
            if words:
                sentences.append(_sentence(source, first_line, words, tags, repair))
            words, tags, first_line = [], [], number + 1
            continue
        tag = columns[-1].strip()
        if len(columns) < 2 or not (tag == "O" or re.fullmatch(r"[BI]-\S+", tag)):
            raise CorruptFileError(
                f"{source}:{number}",
                f"expected 'word<TAB>tag' with tag O, B-TYPE or I-TYPE, got {line[:40]!r}",
                "fix the line or convert the file to BIO tags",
            )
        words.append(columns[0].strip())
        tags.append(tag)
    if not sentences:
        raise EmptyFileError(str(source), "the file holds no tagged sentence", "check the file")
    return sentences


def _sentence(
    source: Path, first_line: int, words: list[str], tags: list[str], repair: bool
) -> TaggedSentence:
    errors = bio_errors(tags)
    if errors and not repair:
        raise CorruptFileError(
            f"{source}:{first_line + errors[0]}",
            f"tag {tags[errors[0]]} does not continue an entity of its type (IOB2)",
            "read the file with repair=True or fix the tag",
        )
    return TaggedSentence(tuple(words), repair_bio(tags))


def write_conll(sentences: Sequence[TaggedSentence], path: str | Path) -> Path:
    """Write sentences as ``word<TAB>tag`` lines, a blank line after each (what
    :func:`read_conll` reads)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for sentence in sentences:
        lines += [f"{word}\t{tag}" for word, tag in zip(sentence.words, sentence.tags, strict=True)]
        lines.append("")
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target

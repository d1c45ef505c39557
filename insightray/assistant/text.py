"""Small text helpers shared by the assistant: whitespace, sentences, search terms.

Sentences are returned as character offsets so that whatever is cut from a passage can be
traced back to it exactly (:mod:`insightray.assistant.responses` relies on that).

Example:
    >>> text = normalize_space("Fever.   - Cough or wheeze.\\n Rest.")
    >>> [text[a:b] for a, b in sentence_spans(text)]
    ['Fever.', 'Cough or wheeze.', 'Rest.']
    >>> terms("What causes kidney stones?")
    ['caus', 'kidney', 'ston']
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "STOPWORDS",
    "known_words",
    "normalize_space",
    "sentence_spans",
    "stem",
    "terms",
    "word_count",
]

_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A break after . ! ? or : when the next piece starts like a sentence or a list item.
_BOUNDARY = re.compile(r"(?<=[.!?:])\s+(?=[-*\u2022(\"'\[]?\s*[A-Z0-9(])|\s+(?=-\s+\S)")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|Dr|Mr|Mrs|Ms|St|vs|approx|Fig|No)\.|\b[A-Z]\.)$")
_BULLET = re.compile(r"^[-*\u2022]\s*")

#: Words that carry no topic: dropped from search terms.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
    i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my
    myself no nor not of off on once only or other ought our ours ourselves out over own same
    shan't she she'd she'll she's should shouldn't so some such than that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've this
    those through to too under until up very was wasn't we we'd we'll we're we've were weren't
    what what's when when's where where's which while who who's whom why why's will with won't
    would wouldn't you you'd you'll you're you've your yours yourself yourselves please thank
    thanks hi hello dear sir madam know tell get got like just want wanted need help
    question questions answer information info anyone someone something really much many
    may might must shall one two also ever every thing things""".split()  # noqa: SIM905 (a word list reads better as text)
)


def normalize_space(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends.

    Example:
        >>> normalize_space("  a\\n\\n b\\t c ")
        'a b c'
    """
    return _SPACE.sub(" ", text).strip()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Offsets ``(start, end)`` of the sentences and list items of ``text``.

    Breaks come after ``.``, ``!``, ``?`` or ``:`` followed by a capital, a digit or a list
    dash, and before `` - `` list items; common abbreviations (``e.g.``, ``Dr.``) do not
    break. Leading list dashes are left out of the span.

    Example:
        >>> text = "Signs include: - fever. - Easy bruising, e.g. Bleeding gums."
        >>> [text[a:b] for a, b in sentence_spans(text)]
        ['Signs include:', 'fever.', 'Easy bruising, e.g. Bleeding gums.']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _ABBREVIATION.search(text[start : match.start()]):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    cleaned: list[tuple[int, int]] = []
    for first, last in spans:
        piece = text[first:last]
        bullet = _BULLET.match(piece)
        if bullet:
            first += bullet.end()
        while last > first and text[last - 1].isspace():
            last -= 1
        if any(char.isalnum() for char in text[first:last]):
            cleaned.append((first, last))
    return cleaned


def stem(word: str) -> str:
    """A light suffix stripper (plurals, ``-ing``, ``-ed``, ``-es``), enough for search terms.

    Example:
        >>> [stem(w) for w in ("stones", "causes", "treating", "allergies", "disease")]
        ['ston', 'caus', 'treat', 'allergy', 'diseas']
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("es") and len(word) > 4:
        return word[:-2]
    if word.endswith("e") and len(word) > 4:
        return word[:-1]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Lower-cased, stemmed content words of ``text`` (possessive ``'s`` dropped).

    Example:
        >>> terms("Parkinson's disease: is it inherited?")
        ['parkinson', 'diseas', 'inherit']
    """
    found = []
    for token in _TOKEN.findall(text.lower()):
        if token.endswith("'s"):
            token = token[:-2]
        if not keep_stopwords and (token in STOPWORDS or len(token) < 2):
            continue
        found.append(stem(token.replace("'", "")))
    return found


def word_count(text: str) -> int:
    """Number of whitespace-separated words.

    Example:
        >>> word_count("one two  three")
        3
    """
    return len(text.split())


def known_words(path: Path | None = None) -> frozenset[str]:
    """Common English words: the whole lower-case words of a vocabulary file, by default the
    packaged MiniLM ``vocab.txt`` (30,522 word pieces; rare words such as most disease names
    are not whole entries). Empty when the file cannot be read.

    Example:
        >>> words = known_words()
        >>> "child" in words, "thalassemia" in words  # doctest: +SKIP
        (True, False)
    """
    if path is None:
        try:
            from insightray.assistant.embeddings import default_model_path

            path = default_model_path() / "vocab.txt"
        except Exception:  # no packaged model: no dictionary
            return frozenset()
    try:
        lines = path.read_text(encoding="utf-8").split()
    except OSError:
        return frozenset()
    return frozenset(word for word in lines if word.isalpha() and word.islower())

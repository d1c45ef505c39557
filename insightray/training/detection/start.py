"""Where a detector's training starts: random weights, a trained model to fine-tune, or a
self-supervised backbone.

With ``TrainConfig.init`` naming a model folder the run fine-tunes it: the card names the
architecture (builder and ``model_kwargs``, so a channel-pruned network keeps its widths), the
weights and anchors come from its safetensors file (checked by SHA-256), and the finished run's
card records it as the parent (lineage ``fine-tuned``). Naming an ``insightray pretrain``
folder instead (an SSL backbone of the same architecture, e.g. ``--arch yolov5s``), the run
builds ``config.model``, copies the backbone layers in and trains the rest from scratch, with
AutoAnchor and the head's bias initialisation as usual; the card names the backbone as the
parent (lineage ``trained``).

Example:
    >>> config = TrainConfig(data="data.yaml", init="runs/pruned")  # doctest: +SKIP
    >>> model, parent = start_model(config, num_classes=2)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightray.engine import load_model
from insightray.engine.weights import input_channels
from insightray.errors import ConfigError
from insightray.models import Lineage, ModelCard, create_model, load_card
from insightray.models.catalog import resolve_card
from insightray.models.classification import load_pretrained
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.config import TrainConfig

__all__ = ["SslStart", "StartingModel", "architecture", "start_model"]

#: The ``kind`` in the card of an ``insightray pretrain`` folder.
SSL_KIND = "ssl-backbone"


@dataclass(frozen=True)
class StartingModel:
    """The model a fine-tuning run starts from.

    Attributes:
        card: Its card.
        card_path: Where the card was read.
    """

    card: ModelCard
    card_path: Path
    #: Whether the run keeps the model's trained Detect head, biases and anchors.
    keeps_head = True

    def lineage(self, config: TrainConfig, data: str) -> Lineage:
        """The finished run's lineage: fine-tuned from this model."""
        settings = {"epochs": config.epochs, "image_size": config.image_size, "lr0": config.lr0}
        parent = f"{self.card_path.parent.name} {self.card.version}"
        return Lineage("fine-tuned", parent, self.card.weights_sha256, settings, data)


@dataclass(frozen=True)
class SslStart:
    """A self-supervised backbone (an ``insightray pretrain`` folder) a run starts from.

    Attributes:
        card_path: The folder's ``card.json``.
        weights: Its backbone weights.
        card: The card's fields (arch, method, weights_sha256, ...).
    """

    card_path: Path
    weights: Path
    card: dict[str, Any]
    #: The Detect head is new: AutoAnchor and the bias initialisation run as from scratch.
    keeps_head = False

    def lineage(self, config: TrainConfig, data: str) -> Lineage:
        """The finished run's lineage: trained on top of this backbone."""
        settings = {"backbone": f"{self.card.get('arch')} {self.card.get('method')} (SSL)"}
        parent = str(self.card_path.parent)
        return Lineage("trained", parent, self.card.get("weights_sha256"), settings, data)


def ssl_start(init: str) -> SslStart | None:
    """The ``insightray pretrain`` folder ``init`` names, or ``None`` when it is not one."""
    card_path = Path(init) / "card.json"
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict) or card.get("kind") != SSL_KIND:
        return None
    return SslStart(card_path, card_path.parent / str(card.get("weights_file")), card)


def starting_model(config: TrainConfig) -> StartingModel | SslStart | None:
    """What ``init`` names: a model to fine-tune, an SSL backbone, or ``None`` for a run from
    random weights.

    Raises:
        ConfigError: It is not a trained PyTorch detector.
        InputNotFoundError: Nothing of that name exists.
    """
    if not config.init:
        return None
    backbone = ssl_start(config.init)
    if backbone is not None:
        return backbone
    card_path = resolve_card(config.init, default=config.init)
    card = load_card(card_path)
    if card.task != "detection" or card.weights_file is None:
        raise ConfigError(config.init, "not a trained detector", "pass a detection model folder")
    if card.weights_file.endswith(".onnx"):
        raise ConfigError(config.init, "an ONNX model cannot be trained", "pass its parent")
    return StartingModel(card, card_path)


def architecture(config: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The registered builder and its keyword arguments (``model_kwargs`` of an ``init``)."""
    start = starting_model(config)
    if not isinstance(start, StartingModel):
        return config.model, {}
    return start.card.name, dict(start.card.preprocessing.model_kwargs)


def start_model(
    config: TrainConfig, num_classes: int
) -> tuple[YoloV5, StartingModel | SslStart | None]:
    """The network a run trains: built fresh (with an SSL backbone copied in), or the ``init``
    model with its weights.

    Raises:
        ConfigError: Not a YOLOv5 detector, an ``init`` whose classes or image channels
            differ from the data's and the config's, or a backbone that does not fit.
    """
    start = starting_model(config)
    if not isinstance(start, StartingModel):
        model = create_model(config.model, num_classes=num_classes, in_channels=config.channels)
        if start is not None:
            load_pretrained(model, start.weights)
    else:
        card = start.card
        if len(card.labels) != num_classes or input_channels(card) != config.channels:
            raise ConfigError(
                config.init,
                f"the model has {len(card.labels)} classes and {input_channels(card)} channels, "
                f"the run {num_classes} and {config.channels}",
                "fine-tune on data with the model's classes and set channels to match",
            )
        assert card.weights_file is not None
        model = load_model(card, start.card_path.parent / card.weights_file).train()
    if not isinstance(model, YoloV5):
        raise ConfigError(config.model, "only YOLOv5 detectors can be trained here", "use yolov5s")
    return model, start

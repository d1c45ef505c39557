"""Where a detector's training starts: random weights, or a trained model to fine-tune.

With ``TrainConfig.init`` the run starts from a model folder: the card names the architecture
(builder and ``model_kwargs``, so a channel-pruned network keeps its widths), the weights and
anchors come from its safetensors file (checked by SHA-256), and the finished run's card
records it as the parent (lineage ``fine-tuned``).

Example:
    >>> config = TrainConfig(data="data.yaml", init="runs/pruned")  # doctest: +SKIP
    >>> model, parent = start_model(config, num_classes=2)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insightray.engine import load_model
from insightray.engine.weights import input_channels
from insightray.errors import ConfigError
from insightray.models import Lineage, ModelCard, create_model, load_card
from insightray.models.catalog import resolve_card
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.config import TrainConfig

__all__ = ["StartingModel", "architecture", "start_model"]


@dataclass(frozen=True)
class StartingModel:
    """The model a fine-tuning run starts from.

    Attributes:
        card: Its card.
        card_path: Where the card was read.
    """

    card: ModelCard
    card_path: Path

    def lineage(self, config: TrainConfig, data: str) -> Lineage:
        """The finished run's lineage: fine-tuned from this model."""
        settings = {"epochs": config.epochs, "image_size": config.image_size, "lr0": config.lr0}
        parent = f"{self.card_path.parent.name} {self.card.version}"
        return Lineage("fine-tuned", parent, self.card.weights_sha256, settings, data)


def starting_model(config: TrainConfig) -> StartingModel | None:
    """The ``init`` model's card, or ``None`` for a run from random weights.

    Raises:
        ConfigError: It is not a trained PyTorch detector.
        InputNotFoundError: Nothing of that name exists.
    """
    if not config.init:
        return None
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
    if start is None:
        return config.model, {}
    return start.card.name, dict(start.card.preprocessing.model_kwargs)


def start_model(config: TrainConfig, num_classes: int) -> tuple[YoloV5, StartingModel | None]:
    """The network a run trains: built fresh, or the ``init`` model with its weights.

    Raises:
        ConfigError: Not a YOLOv5 detector, or an ``init`` whose classes or image channels
            differ from the data's and the config's.
    """
    start = starting_model(config)
    if start is None:
        model = create_model(config.model, num_classes=num_classes, in_channels=config.channels)
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

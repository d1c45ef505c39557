"""Model cards: what a set of trained weights is, where it came from and how to run it.

A card travels with its weights as ``card.json`` (torchxrayvision ships labels and operating
thresholds with its weights the same way). Its sections are typed and validated:
:class:`Preprocessing` (how an input becomes a network input), :class:`Thresholds` (the
operating point), :class:`Explain` (which layer Grad-CAM hooks), :class:`Lineage` (the parent
model and what was done to it) and the optional :class:`Calibration` (a temperature fitted
after training; added within layout 2, cards without it read as uncalibrated).
``card_version`` says which layout a file has; version 1 files (written before the sections
were typed) load as they are.

Example:
    >>> card = ModelCard("yolov5s", "detection", "1.0.0", ("nodule",), (640, 640),
    ...                  thresholds=Thresholds(confidence=0.25, iou=0.45))
    >>> ModelCard.from_dict(card.to_dict()) == card
    True
    >>> card.lineage.method
    'trained'
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.ensemble import Ensemble, TestTimeAugmentation

__all__ = [
    "CARD_VERSION",
    "LINEAGE_METHODS",
    "Calibration",
    "Explain",
    "Lineage",
    "ModelCard",
    "Preprocessing",
    "Thresholds",
    "load_card",
    "save_card",
]

#: The layout :meth:`ModelCard.to_dict` writes.
CARD_VERSION = 2
#: What can have been done to a parent model to make this one.
LINEAGE_METHODS = (
    "trained",
    "fine-tuned",
    "quantised",
    "qat",
    "pruned",
    "distilled",
    "federated",
    "converted",
)

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def _fail(subject: str, problem: str, fix: str = "fix the card") -> ConfigError:
    return ConfigError(f"model card {subject}", problem, fix)


def _floats(value: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list | tuple) else [value]
    return tuple(float(item) for item in values)


@dataclass(frozen=True)
class Preprocessing:
    """How an input becomes the network's input.

    Attributes:
        channels: Image channels the network takes (gray is repeated); ``None`` uses the
            registered builder's default.
        letterbox: Resize keeping the aspect ratio and pad (images).
        pad_value: Letterbox padding intensity in ``[0, 1]``.
        mean: Subtracted after scaling to ``[0, 1]`` (one value, or one per channel).
        std: Divided by after the mean (one value, or one per channel); all positive.
        intensity: How pixel values are scaled, in words.
        enhancement: :class:`~insightray.imaging.enhance.RadiographEnhancement` settings.
        model_kwargs: Extra keyword arguments of the registered builder.
        extra: Task-specific settings (text encoders, vocabularies, training settings), kept
            as written.
    """

    channels: int | None = None
    letterbox: bool = True
    pad_value: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    intensity: str = ""
    enhancement: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channels is not None and self.channels not in (1, 3):
            raise _fail("preprocessing", f"channels {self.channels} is not 1 or 3")
        if not 0.0 <= self.pad_value <= 1.0:
            raise _fail("preprocessing", f"pad_value {self.pad_value} is outside [0, 1]")
        if self.std is not None and min(self.std) <= 0:
            raise _fail("preprocessing", "std must be positive")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the fields that differ from their defaults, then ``extra``."""
        defaults = Preprocessing()
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "extra" or value == getattr(defaults, item.name):
                continue
            if item.name in ("mean", "std"):
                value = value[0] if len(value) == 1 else list(value)
            data[item.name] = value
        return data | self.extra

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Read the JSON form; keys that are not fields go to ``extra``."""
        typed = {item.name for item in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {key: data[key] for key in typed if key in data}
        try:
            if values.get("channels") is not None:
                values["channels"] = int(values["channels"])
            for key in ("mean", "std"):
                if values.get(key) is not None:
                    values[key] = _floats(values[key])
            if "pad_value" in values:
                values["pad_value"] = float(values["pad_value"])
            for key in ("enhancement", "model_kwargs"):
                if key in values:
                    values[key] = dict(values[key])
        except (TypeError, ValueError) as error:
            raise _fail("preprocessing", f"a field has the wrong shape ({error})") from error
        extra = {key: value for key, value in data.items() if key not in typed}
        return cls(**values, extra=extra)


@dataclass(frozen=True)
class Thresholds:
    """Operating thresholds chosen when the model was trained.

    Attributes:
        confidence: Detections below this score are dropped.
        iou: Non-maximum suppression overlap.
        operating_point: Classifier probability at which the positive label is given.
        extra: Other named thresholds (e.g. ``youden``, ``fixed_sensitivity``).
    """

    confidence: float | None = None
    iou: float | None = None
    operating_point: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("confidence", "iou", "operating_point"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise _fail("thresholds", f"{name} {value} is outside [0, 1]")

    def to_dict(self) -> dict[str, float]:
        """The JSON form (unset thresholds left out)."""
        named = {"confidence": self.confidence, "iou": self.iou}
        named["operating_point"] = self.operating_point
        return {key: value for key, value in named.items() if value is not None} | self.extra

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """Read the JSON form; version 1 cards may name the confidence ``conf``."""
        try:
            values = {key: float(value) for key, value in data.items()}
        except (TypeError, ValueError) as error:
            raise _fail("thresholds", f"a threshold is not a number ({error})") from error
        if "conf" in values:
            values.setdefault("confidence", values.pop("conf"))
        confidence = values.pop("confidence", None)
        iou = values.pop("iou", None)
        return cls(confidence, iou, values.pop("operating_point", None), values)


@dataclass(frozen=True)
class Explain:
    """How the model's outputs are explained.

    Attributes:
        cam_layer: Dotted name of the layer Grad-CAM hooks; ``None`` uses the builder's default.
    """

    cam_layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (unset fields left out)."""
        return {} if self.cam_layer is None else {"cam_layer": self.cam_layer}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Explain:
        """Read the JSON form."""
        unknown = sorted(set(data) - {"cam_layer"})
        if unknown:
            raise _fail("explain", f"unknown fields {', '.join(unknown)}")
        layer = data.get("cam_layer")
        return cls(None if layer is None else str(layer))


@dataclass(frozen=True)
class Calibration:
    """How the model's scores were calibrated after training (an optional section: cards
    without it, of any ``card_version``, have uncalibrated scores).

    Attributes:
        temperature: Temperature scaling (Guo et al., 2017): the probability is
            ``sigmoid(logit / temperature)``; ``None`` when uncalibrated.
        fitted_on: The data the temperature was fitted on (never a set reported as held out).
    """

    temperature: float | None = None
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.temperature is not None and not 0.0 < self.temperature < 1e6:
            raise _fail("calibration", f"temperature {self.temperature} is not positive")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (empty when uncalibrated)."""
        if self.temperature is None:
            return {}
        return {"temperature": self.temperature, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Read the JSON form."""
        unknown = sorted(set(data) - {"temperature", "fitted_on"})
        if unknown:
            raise _fail("calibration", f"unknown fields {', '.join(unknown)}")
        temperature = data.get("temperature")
        try:
            value = None if temperature is None else float(temperature)
        except (TypeError, ValueError) as error:
            raise _fail("calibration", "temperature is not a number") from error
        return cls(value, str(data.get("fitted_on", "")))


@dataclass(frozen=True)
class Lineage:
    """Where the weights came from.

    Attributes:
        method: What made them: one of :data:`LINEAGE_METHODS`.
        parent: The model they were made from (``name:version`` or a path), if any.
        parent_sha256: SHA-256 of the parent's weights.
        settings: The method's settings (e.g. quantisation scheme, sparsity, privacy budget).
        data: The data used (training, calibration or distillation set).
    """

    method: str = "trained"
    parent: str | None = None
    parent_sha256: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    data: str = ""

    def __post_init__(self) -> None:
        if self.method not in LINEAGE_METHODS:
            raise _fail(
                "lineage", f"method {self.method!r} is unknown", f"use one of {LINEAGE_METHODS}"
            )
        if self.parent_sha256 is not None and not _SHA256_PATTERN.fullmatch(self.parent_sha256):
            raise _fail("lineage", "parent_sha256 is not 64 lower-case hex digits")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        """Read the JSON form."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _fail("lineage", f"unknown fields {', '.join(unknown)}")
        values = dict(data)
        values["settings"] = dict(values.get("settings", {}))
        return cls(**values)


_SECTIONS: dict[str, Any] = {
    "preprocessing": Preprocessing,
    "thresholds": Thresholds,
    "explain": Explain,
    "lineage": Lineage,
    "calibration": Calibration,
}


@dataclass(frozen=True)
class ModelCard:
    """What a set of trained weights is, where it came from and how well it does.

    The sections may be given as mappings (as read from JSON); they are validated and stored
    typed.

    Attributes:
        name: Registered model name the weights belong to, e.g. ``"yolov5s"``.
        task: The task, e.g. ``"detection"``; it picks the predictor
            (:func:`insightray.engine.load_predictor`).
        version: Version of these weights, e.g. ``"1.0.0"``.
        labels: Class names in output order.
        input_size: Network input ``(height, width)`` in pixels (``(1, max tokens)`` for text).
        preprocessing: How inputs are prepared.
        thresholds: The operating point.
        explain: How outputs are explained.
        lineage: The parent model and what was done to it.
        calibration: Score calibration fitted after training (temperature scaling).
        weights_file: Weights file name, relative to the card.
        weights_sha256: Lower-case hex SHA-256 of the weights file.
        training_data: The data sets the weights were trained on.
        data_licence: Licence of that training data.
        metrics: Evaluation results, e.g. ``{"mAP50": 0.41}``.
        notes: Intended use, limitations and anything else a user must know.
        card_version: The card layout (:data:`CARD_VERSION`).
        ensemble: For an ensemble card (no weights of its own): its members and their
            fusion (:class:`~insightray.models.ensemble.Ensemble`).
        tta: Test-time augmentation run by default with this model, if any.
        backend: The backend ``auto`` runs these weights on when it is not the default for
            their format (e.g. ``"openvino-bf16"`` for a bfloat16 conversion).
    """

    name: str
    task: str
    version: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    thresholds: Thresholds = field(default_factory=Thresholds)
    explain: Explain = field(default_factory=Explain)
    lineage: Lineage = field(default_factory=Lineage)
    calibration: Calibration = field(default_factory=Calibration)
    weights_file: str | None = None
    weights_sha256: str | None = None
    training_data: str = ""
    data_licence: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    card_version: int = CARD_VERSION
    ensemble: Ensemble | None = None
    tta: TestTimeAugmentation | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        for name, section in (("ensemble", Ensemble), ("tta", TestTimeAugmentation)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, section.from_dict(value))
            elif value is not None and not isinstance(value, section):
                raise _fail(self.name, f"{name} is a {type(value).__name__}, not a mapping")
        for name, section in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, section.from_dict(value))
            elif not isinstance(value, section):
                raise _fail(self.name, f"{name} is a {type(value).__name__}, not a mapping")
        if len(self.input_size) != 2 or any(side <= 0 for side in self.input_size):
            raise ConfigError(
                f"model card {self.name}",
                f"input_size {self.input_size!r} is not a (height, width) pair of positive ints",
                "give it as [height, width], e.g. [640, 640]",
            )
        if self.weights_sha256 is not None and not _SHA256_PATTERN.fullmatch(self.weights_sha256):
            raise ConfigError(
                f"model card {self.name}",
                "weights_sha256 is not 64 lower-case hex digits",
                "compute it with `sha256sum` on the weights file",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary in the current layout."""
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name in ("ensemble", "tta", "backend"):
                if value is not None:  # written only when set
                    data[item.name] = value if item.name == "backend" else value.to_dict()
                continue
            data[item.name] = value.to_dict() if item.name in _SECTIONS else value
        if not data["calibration"]:  # optional section: uncalibrated cards stay as they were
            del data["calibration"]
        data["labels"] = list(self.labels)
        data["input_size"] = list(self.input_size)
        data["metrics"] = dict(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Build a card from a dictionary such as :meth:`to_dict` returns (any layout).

        Raises:
            ConfigError: If fields are missing, unknown or of the wrong shape.
        """
        subject = f"model card {data.get('name', '(unnamed)')}"
        known = {card_field.name for card_field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                subject, f"unknown fields {', '.join(unknown)}", "remove them or fix their names"
            )
        required = {"name", "task", "version", "labels", "input_size"}
        missing = sorted(required - set(data))
        if missing:
            raise ConfigError(subject, f"missing fields {', '.join(missing)}", "add them")
        values = _upgrade(dict(data))
        try:
            values["labels"] = tuple(str(label) for label in data["labels"])
            height, width = (int(side) for side in data["input_size"])
            values["input_size"] = (height, width)
            values["metrics"] = dict(data.get("metrics", {}))
            for name in _SECTIONS:
                values[name] = dict(values.get(name, {}))
        except (TypeError, ValueError) as error:
            raise ConfigError(
                subject, f"a field has the wrong shape ({error})", "fix it"
            ) from error
        return cls(**values)


def _upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """Bring a version 1 card (no ``card_version``) to the current layout."""
    if int(values.get("card_version", 1)) >= CARD_VERSION:
        return values
    preprocessing = dict(values.get("preprocessing") or {})
    layer = preprocessing.pop("gradcam_layer", None)
    values["preprocessing"] = preprocessing
    if layer:
        values["explain"] = {"cam_layer": layer}
    values["card_version"] = CARD_VERSION
    return values


def save_card(card: ModelCard, path: str | Path) -> None:
    """Write ``card`` as indented JSON to ``path``.

    Example:
        >>> card = ModelCard("yolov5s", "detection", "1.0.0", ("nodule",), (640, 640))
        >>> save_card(card, "yolov5s_nodule.card.json")  # doctest: +SKIP
    """
    Path(path).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_card(path: str | Path) -> ModelCard:
    """Read a model card written by :func:`save_card` (or an older version 1 card).

    Raises:
        InputNotFoundError: If the file does not exist or cannot be read.
        ConfigError: If the file is not valid JSON or not a valid card.
    """
    card_path = Path(path)
    try:
        text = card_path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputNotFoundError(
            str(card_path), "the model card cannot be read", "check the path"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            str(card_path), f"not valid JSON (line {error.lineno})", "fix the file"
        ) from error
    if not isinstance(data, dict):
        raise ConfigError(str(card_path), "the JSON is not an object", "write the card as {...}")
    return ModelCard.from_dict(data)

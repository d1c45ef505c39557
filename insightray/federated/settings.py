"""One federated run's settings, carried to every process as Flower's run config.

The coordinator writes :class:`FederatedSettings` into the Flower app's ``run_config`` (flat
TOML scalars, see :meth:`FederatedSettings.to_run_config`); the ServerApp and every site's
ClientApp read them back with :meth:`FederatedSettings.from_run_config`, so the server and the
sites agree on the model, the local budget and the privacy settings.

Example:
    >>> settings = FederatedSettings(strategy="fedprox", mu=0.01, rounds=2)
    >>> FederatedSettings.from_run_config(settings.to_run_config()) == settings
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from insightray.errors import ConfigError
from insightray.training.fracture.augmentation import AugmentSettings
from insightray.training.fracture.config import FractureTrainConfig

__all__ = ["STRATEGIES", "TASKS", "FederatedSettings"]

STRATEGIES = ("fedavg", "fedprox")
#: The federated tasks (:mod:`insightray.federated.tasks` registers one class per name).
TASKS = ("fracture", "ner", "detect")


@dataclass(frozen=True)
class FederatedSettings:
    """Everything the server and the sites must agree on.

    Attributes:
        task: What is trained: ``"fracture"``, ``"ner"`` or ``"detect"`` (see
            :mod:`insightray.federated.tasks`). ``model`` and ``pretrained`` apply to
            fracture only, ``detector`` to detect only; ``image_size`` and ``augment`` to both.
        model: Registered classifier (``efficientnet_lite0``: the packaged ImageNet weights).
        pretrained: Start from the packaged ImageNet weights.
        detector: Registered YOLOv5 detector for ``detect`` (from random weights).
        image_size: Network input side in pixels.
        batch_size: Images (sentences for NER) per local step.
        lr: Local AdamW learning rate (fracture: warm-up then cosine within each round; NER:
            the NER trainer's per-epoch decay). Not used by detect, which keeps the detector
            trainer's SGD recipe (lr0 0.01, warm-up, linear decay over all rounds).
        local_epochs: Passes over a site's data per round.
        augment: Use the trainer's augmentation at the sites.
        rounds: Federated rounds.
        strategy: ``"fedavg"`` or ``"fedprox"``.
        mu: FedProx proximal coefficient.
        fraction: Share of the connected sites sampled each round (client sampling).
        min_sites: Fewest sites a round needs; a round with fewer replies is skipped.
        local_bn: FedBN: batch-norm layers stay local between rounds (see ``site``). Off by
            default: on the sites' own validation groups, averaged batch norm scored higher
            (BENCHMARKS.md, federated section).
        dp_noise: Noise multiplier z of the Gaussian mechanism (0 with ``dp_clip`` 0: no DP).
        dp_clip: L2 norm every site's update is clipped to (0: no DP).
        dp_delta: The delta of the reported (epsilon, delta).
        secagg: Aggregate with SecAgg+ (the server sees only the sum of the updates).
        max_site_images: SecAgg+'s largest expected site weight (sample count).
        round_timeout: Seconds the server waits for a round's replies.
        seed: Seed of the initial weights and of each site's sampling.
        out: The coordinator's output folder (the server writes the weights and rounds here).
        eval_data: The coordinator's own labelled data, scored each round ("" : none); for
            NER also the vocabulary's source (a ``devel.tsv`` or a folder holding one).
    """

    task: str = "fracture"
    model: str = "efficientnet_lite0"
    pretrained: bool = True
    detector: str = "yolov5n"
    image_size: int = 64
    batch_size: int = 16
    lr: float = 1e-3
    local_epochs: int = 1
    augment: bool = True
    rounds: int = 3
    strategy: str = "fedavg"
    mu: float = 0.01
    fraction: float = 1.0
    min_sites: int = 2
    local_bn: bool = False
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    dp_delta: float = 1e-3
    secagg: bool = False
    max_site_images: int = 10_000
    round_timeout: float = 900.0
    seed: int = 0
    out: str = ""
    eval_data: str = ""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("task", self.task in TASKS, f"use one of {TASKS}"),
            ("strategy", self.strategy in STRATEGIES, f"use one of {STRATEGIES}"),
            ("rounds", self.rounds >= 1, "use at least 1"),
            ("local_epochs", self.local_epochs >= 1, "use at least 1"),
            ("mu", self.mu >= 0, "use a value >= 0"),
            ("fraction", 0 < self.fraction <= 1, "use a value in (0, 1]"),
            ("min_sites", self.min_sites >= 1, "use at least 1"),
            ("dp_noise", self.dp_noise >= 0, "use a value >= 0"),
            ("dp_clip", self.dp_clip >= 0, "use a value >= 0"),
            ("dp_delta", 0 < self.dp_delta < 1, "use a value in (0, 1)"),
            ("dp", self.dp_clip > 0 or self.dp_noise == 0, "--dp-noise needs --dp-clip"),
            (
                "dp_clip",
                not (self.task == "detect" and self.dp_clip > 0),
                "DP is not offered for detect (the noise would reach its anchors); drop --dp-*",
            ),
            ("round_timeout", self.round_timeout > 0, "use a positive number of seconds"),
        ]
        for name, ok, hint in checks:
            if not ok:
                raise ConfigError(f"federated {name}", f"{getattr(self, name, '')!r}", hint)

    @property
    def private(self) -> bool:
        """Whether updates are clipped and noised (differential privacy)."""
        return self.dp_clip > 0

    def to_run_config(self) -> dict[str, str | int | float | bool]:
        """The flat form Flower's run config carries (keys with dashes)."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> FederatedSettings:
        """Read the settings back from a run config (unknown keys are ignored)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = f.name.replace("_", "-")
            if key in config:
                kind = type(getattr(cls(), f.name))
                values[f.name] = kind(config[key])
        return cls(**values)

    def train_config(self, seed: int | None = None) -> FractureTrainConfig:
        """The fracture trainer's config for one local round (or for central training)."""
        return FractureTrainConfig(
            model=self.model,
            pretrained=self.pretrained,
            image_size=self.image_size,
            batch_size=self.batch_size,
            lr=self.lr,
            augment=AugmentSettings(enabled=self.augment),
            seed=self.seed if seed is None else seed,
            device="cpu",
        )

"""The interface each federated task implements (see :mod:`insightray.federated.tasks`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from numpy.typing import NDArray
from torch import nn

from insightray.federated.settings import FederatedSettings
from insightray.models import ModelCard

__all__ = ["FederatedTask", "LocalResult"]

#: Round-config values: what Flower's config records carry.
Spec = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class LocalResult:
    """One site's local round: optimiser steps, training examples (its weight), mean loss."""

    steps: int
    examples: int
    loss: float


class FederatedTask(ABC):
    """One model's federated hooks. Subclasses set :attr:`name`, :attr:`metric` and
    :attr:`metric_name`.

    ``spec`` is what every site needs beyond the run's settings to build the same network
    (the NER tagger's vocabulary); the server makes it once and sends it with every round's
    instructions, so sites hold nothing of each other's.
    """

    name: ClassVar[str]
    #: The server-side score of each round's global model (``eval_<metric>`` in rounds.json).
    metric: ClassVar[str]
    #: How :attr:`metric` is printed for people (``mAP@0.5``).
    metric_name: ClassVar[str]
    #: Whether the coordinator needs its own labelled data (``eval_data``) to start a run.
    needs_eval_data: ClassVar[bool] = False

    def model_spec(self, settings: FederatedSettings) -> Spec:
        """The server's spec of the network (none by default)."""
        return {}

    @abstractmethod
    def build_model(
        self, settings: FederatedSettings, spec: Mapping[str, Any], *, initial: bool = False
    ) -> nn.Module:
        """The network for ``settings`` and the server's ``spec``.

        ``initial``: the server's round-0 model (packaged pretrained weights where the
        settings ask for them); otherwise its weights are about to be replaced.
        """

    @abstractmethod
    def load_site(self, folder: str, settings: FederatedSettings, cache: str) -> Any:
        """A site's training data from its folder (``--node-config data=...``)."""

    @abstractmethod
    def train_local(
        self,
        model: nn.Module,
        data: Any,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        *,
        seed: int,
        proximal_mu: float,
    ) -> LocalResult:
        """``settings.local_epochs`` of the task's own trainer on ``data``, in place."""

    @abstractmethod
    def scorer(
        self,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        path: str,
        cache: Path,
        *,
        full: bool = False,
    ) -> Callable[[nn.Module], dict[str, Any]]:
        """A function scoring a model on the labelled data at ``path``.

        Its result holds :attr:`metric`; with ``full`` it is the task's whole test report
        (confidence intervals and the like), which may take longer.
        """

    @abstractmethod
    def split(
        self, data: Path, sites: int, out: Path, *, label_skew: float, size_skew: float, seed: int
    ) -> None:
        """Write a non-IID site split of ``data`` into ``out`` (``site_K`` folders)."""

    @abstractmethod
    def site_size(self, folder: Path) -> int:
        """Training examples in a site folder (SecAgg+'s largest weight)."""

    @abstractmethod
    def evaluation_data(self, split: Path) -> tuple[Path | None, Path | None]:
        """The split's server data: (scored each round, held-out test scored at the end)."""

    @abstractmethod
    def write_model(
        self,
        out: Path,
        settings: FederatedSettings,
        spec: Mapping[str, Any],
        arrays: list[NDArray[Any]],
        lineage: dict[str, Any],
        training_data: str,
        metrics: dict[str, float],
    ) -> ModelCard:
        """Write the model folder the task's ``evaluate`` verb reads; return its card."""

    @abstractmethod
    def test_metrics(self, report: dict[str, Any]) -> dict[str, float]:
        """The card's metrics from a test report (a :meth:`scorer` result)."""

    @abstractmethod
    def describe(self, report: dict[str, Any]) -> str:
        """One line for people: a test report's headline figures."""

"""What acquisition needs from a classifier: probabilities, MC-dropout samples, embeddings.

:class:`ClassifierProbe` runs the backbone of any of our classifiers once per image and keeps
the input of its last linear layer (the embedding the core-set method measures distances
in); Monte-Carlo dropout then re-applies that head ``passes`` times with dropout on the
embedding. This is last-layer MC dropout: it works for every registered classifier, also
those trained without dropout, at the cost of one backbone pass, but it models the head's
uncertainty only (a full MC dropout would need dropout layers inside the backbone).

Example:
    >>> from insightray.models import create_model
    >>> probe = ClassifierProbe(create_model("efficientnet_lite0", num_classes=1))
    >>> out = probe(torch.zeros(2, 1, 64, 64), passes=3)
    >>> out.samples.shape, out.embeddings.shape
    ((3, 2), (2, 1280))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional as F

from insightray.errors import ConfigError

__all__ = ["ClassifierProbe", "ProbeOutput", "last_linear"]


@dataclass(frozen=True)
class ProbeOutput:
    """One batch through :class:`ClassifierProbe`.

    Attributes:
        probabilities: ``(N,)`` positive-class probabilities, dropout off.
        samples: ``(passes, N)`` probabilities with dropout on (empty without passes).
        embeddings: ``(N, D)`` inputs of the last linear layer.
    """

    probabilities: NDArray[np.float64]
    samples: NDArray[np.float64]
    embeddings: NDArray[np.float32]


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier's output layer: its last ``nn.Linear`` in module order.

    Raises:
        ConfigError: The model has no linear layer.
    """
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError("model", "it has no linear output layer", "use a registry classifier")
    return linears[-1]


class ClassifierProbe:
    """Probabilities, last-layer MC-dropout samples and embeddings of a one-logit classifier.

    The probe hooks a private copy of the model, so the caller's model (a served one, used by
    other threads) is never touched.

    Args:
        model: The network.
        dropout: Dropout probability applied to the embedding in the MC passes.
        seed: Seed of the dropout masks (the same seed gives the same samples).
    """

    def __init__(self, model: nn.Module, dropout: float = 0.2, seed: int = 0) -> None:
        if not 0 < dropout < 1:
            raise ConfigError(f"dropout {dropout}", "it must lie in (0, 1)", "use e.g. 0.2")
        self.model = copy.deepcopy(model).eval()
        self.head = last_linear(self.model)
        self.dropout = dropout
        self.generator = torch.Generator().manual_seed(seed)
        self._captured: list[torch.Tensor] = []
        self.head.register_forward_pre_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._captured.append(inputs[0].detach())

    def __call__(self, batch: torch.Tensor, passes: int = 0) -> ProbeOutput:
        """Run a prepared ``(N, C, H, W)`` batch; ``passes`` MC-dropout samples per image."""
        self._captured.clear()
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            logits = self.model(batch.to(device)).reshape(len(batch), -1)[:, -1].float()
            embedding = self._captured[-1].reshape(len(batch), -1)
            samples = []
            for _ in range(passes):
                keep = torch.rand(embedding.shape, generator=self.generator) >= self.dropout
                dropped = embedding * keep.to(embedding) / (1 - self.dropout)
                out = F.linear(dropped, self.head.weight, self.head.bias)
                samples.append(torch.sigmoid(out.reshape(len(batch), -1)[:, -1].float()))
        stacked = torch.stack(samples).cpu().numpy() if samples else np.zeros((0, len(batch)))
        return ProbeOutput(
            torch.sigmoid(logits).cpu().numpy().astype(np.float64),
            stacked.astype(np.float64),
            embedding.float().cpu().numpy(),
        )

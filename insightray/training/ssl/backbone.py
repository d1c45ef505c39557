"""The network that self-supervised pre-training trains: a registry model without its head.

- A classifier (``efficientnet_lite0``, ``resnet50_radiograph``...) keeps every layer; its
  output layer (the last ``nn.Linear``) is replaced by the identity, so the backbone returns
  the embedding. Saved tensor names are the classifier's own, so
  :func:`insightray.models.classification.load_pretrained` (``init_weights``) copies them
  into a fresh classifier and leaves the new head as initialised.
- A YOLOv5 detector (``yolov5s``...) keeps the layers up to and including SPPF (the CSP
  backbone), globally average-pooled; names stay ``layers.<i>.*``, those of the detector.

Example:
    >>> net = SslBackbone("efficientnet_lite0")
    >>> net(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1280])
"""

from __future__ import annotations

import torch
from torch import nn

from insightray.errors import ConfigError
from insightray.models import create_model, model_task
from insightray.models.detection.yolo import YoloV5

__all__ = ["SslBackbone"]


def _drop_head(model: nn.Module) -> int:
    """Replace the last ``nn.Linear`` by the identity; return its input width."""
    owner_name = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            owner_name = name
    if not owner_name:
        raise ConfigError("model", "it has no linear output layer", "use a registry classifier")
    parent_name, _, attribute = owner_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    head = getattr(parent, attribute)
    setattr(parent, attribute, nn.Identity())
    return int(head.in_features)


class SslBackbone(nn.Module):
    """A registry architecture as a feature extractor, 1 input channel.

    Args:
        arch: A registered classification or detection model name.

    Raises:
        ConfigError: An unknown architecture or one of another task.
    """

    def __init__(self, arch: str) -> None:
        super().__init__()
        self.arch = arch
        task = model_task(arch)
        self.model = create_model(arch, num_classes=1, in_channels=1)
        if task == "classification":
            self.detector_layers = 0
            self.out_features = _drop_head(self.model)
        elif task == "detection" and isinstance(self.model, YoloV5):
            names = [row[2] for row in self.model.rows]
            self.detector_layers = names.index("SPPF" if "SPPF" in names else "SPP") + 1
            with torch.no_grad():
                self.out_features = int(self._detector_features(torch.zeros(1, 1, 64, 64)).shape[1])
        else:
            raise ConfigError(f"arch {arch}", f"a {task} model", "use a classifier or a YOLOv5")

    def _detector_features(self, images: torch.Tensor) -> torch.Tensor:
        assert isinstance(self.model, YoloV5)
        current = images
        for layer in self.model.layers[: self.detector_layers]:
            current = layer(current)
        return current.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` images to ``(B, out_features)`` embeddings."""
        if self.detector_layers:
            return self._detector_features(images)
        return self.model(images).reshape(len(images), -1)  # type: ignore[no-any-return]

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The tensors to save, named as in the full classifier or detector."""
        state = self.model.state_dict()
        if self.detector_layers:
            keep = tuple(f"layers.{i}." for i in range(self.detector_layers))
            state = {k: v for k, v in state.items() if k.startswith(keep)}
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

"""AutoAnchor for a detector about to train: its anchors checked against the training boxes.

The algorithm (best possible recall, k-means plus evolution) is
:mod:`insightray.training.detection.autoanchor`; this module measures the boxes of a
:class:`~insightray.training.detection.datasets.DetectionDataset` at the training image size
and writes refitted anchors into the model.
"""

from __future__ import annotations

import numpy as np
import torch
from rich.console import Console

from insightray.models.detection.yolo import YoloV5
from insightray.training.detection.autoanchor import AnchorCheck, check_anchors
from insightray.training.detection.config import TrainConfig
from insightray.training.detection.datasets import DetectionDataset, read_image_size

__all__ = ["fit_model_anchors"]


def fit_model_anchors(
    model: YoloV5, dataset: DetectionDataset, config: TrainConfig, console: Console | None
) -> AnchorCheck:
    """Check ``model``'s anchors on ``dataset``'s boxes; refit them in place when needed.

    Boxes are scaled as the letterbox scales them (longer side to ``config.image_size``); the
    ratio threshold is the loss's ``anchor_t``. The outcome is printed on ``console`` if given.
    """
    sizes = []
    for record in dataset.records:
        rows, cols = record.image_size or read_image_size(record.image_path)
        scale = config.image_size / max(rows, cols)
        sizes.append((record.boxes[:, 2:] - record.boxes[:, :2]) * scale)
    box_wh = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    check = check_anchors(
        model.detect.anchors.clone(),
        box_wh,
        threshold=config.loss.anchor_t,
        img_size=config.image_size,
        seed=config.seed,
    )
    if check.replaced:
        with torch.no_grad():
            model.detect.anchors.copy_(check.anchors)
    if console is not None:
        action = "refitted" if check.replaced else "kept"
        console.print(
            f"AutoAnchor: best possible recall {check.bpr_before:.4f} -> "
            f"{check.bpr_after:.4f}, anchors {action}",
            highlight=False,
            soft_wrap=True,
        )
    return check

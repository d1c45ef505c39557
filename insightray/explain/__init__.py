"""Explanations of model outputs: Grad-CAM heatmaps for the image classifiers, EigenCAM for the
detector (word attributions of the text classifier live in :mod:`insightray.nlp.attribution`).

Example:
    >>> from insightray.explain import gradcam_heatmap, save_overlay
"""

from __future__ import annotations

from insightray.explain.eigencam import eigencam_heatmap
from insightray.explain.gradcam import (
    gradcam_heatmap,
    heatmap_rgba,
    overlay_heatmap,
    save_overlay,
    target_layer,
)

__all__ = [
    "eigencam_heatmap",
    "gradcam_heatmap",
    "heatmap_rgba",
    "overlay_heatmap",
    "save_overlay",
    "target_layer",
]

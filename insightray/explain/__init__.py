"""Explanations of model outputs: Grad-CAM heatmaps for the image classifiers.

Example:
    >>> from insightray.explain import gradcam_heatmap, save_overlay
"""

from __future__ import annotations

from insightray.explain.gradcam import (
    gradcam_heatmap,
    heatmap_rgba,
    overlay_heatmap,
    save_overlay,
    target_layer,
)

__all__ = ["gradcam_heatmap", "heatmap_rgba", "overlay_heatmap", "save_overlay", "target_layer"]

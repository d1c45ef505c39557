"""Prepare training images once (decode, enhance, letterbox) and show each step as a debug image.

Decoding large JPEGs and DICOMs dominates a small CPU training run, so
:func:`load_prepared` decodes every image once, applies the enhancement and the letterbox of
:func:`~insightray.engine.preprocessing.prepare_pixels` (without normalising) and keeps the
result as float16 in memory, optionally cached on disk keyed by the file list,
the enhancement and the size. :func:`write_debug_images` writes one PNG per enabled step.

Example:
    >>> from insightray.imaging.enhance import RadiographEnhancement
    >>> steps = RadiographEnhancement(clahe=True)
    >>> write_debug_images("hand.png", steps, "debug/")  # doctest: +SKIP
    [PosixPath('debug/hand_0_input.png'), PosixPath('debug/hand_1_clahe.png')]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from insightray.engine.preprocessing import prepare_pixels, to_unit_gray
from insightray.imaging import read_image, write_png
from insightray.imaging.enhance import RadiographEnhancement
from insightray.training.fracture.dataset import FractureItem

__all__ = ["load_prepared", "write_debug_images"]


def write_debug_images(
    image_path: str | Path, enhancement: RadiographEnhancement, out_dir: str | Path
) -> list[Path]:
    """Write the input and the image after each enabled enhancement step as PNGs.

    Returns:
        The written files, in step order (``<stem>_<k>_<step>.png``).
    """
    source = Path(image_path)
    image = to_unit_gray(read_image(source).pixels)
    folder = Path(out_dir)
    written = [write_png(image, folder / f"{source.stem}_0_input.png")]
    for index, (name, step) in enumerate(enhancement.steps(), start=1):
        image = step(image)
        written.append(write_png(image, folder / f"{source.stem}_{index}_{name}.png"))
    return written


def _cache_key(items: Sequence[FractureItem], enhancement: RadiographEnhancement, size: int) -> str:
    description = {
        "files": [str(item.path.resolve()) for item in items],
        "enhancement": enhancement.to_dict(),
        "size": size,
        "format": 1,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def load_prepared(
    items: Sequence[FractureItem],
    enhancement: RadiographEnhancement,
    size: int,
    cache_dir: str | Path | None = None,
) -> NDArray[np.float16]:
    """Decode, enhance and letterbox every image to ``(N, size, size)`` in ``[0, 1]``.

    Args:
        items: The images.
        enhancement: Enhancement steps.
        size: Letterbox side.
        cache_dir: Folder for an ``.npy`` cache (reused when files, steps and size match).

    Raises:
        InputError: An image cannot be decoded (the message names the file).
    """
    cache_file = None
    if cache_dir:
        cache_file = Path(cache_dir) / f"fracture-{_cache_key(items, enhancement, size)}.npy"
        if cache_file.is_file():
            return np.load(cache_file)  # type: ignore[no-any-return]
    out = np.empty((len(items), size, size), dtype=np.float16)
    for index, item in enumerate(items):
        prepared = prepare_pixels(read_image(item.path).pixels, enhancement, size, 1, 0.0, 1.0)
        out[index] = prepared.tensor[0]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(".partial.npy")
        np.save(partial, out)
        partial.replace(cache_file)
    return out

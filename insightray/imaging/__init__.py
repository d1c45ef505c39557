"""Image ingestion: DICOM, PNG, JPEG and TIFF in; float32 pixels and patient-free metadata out.

Example:
    >>> from insightray.imaging import read_image, Window
    >>> image = read_image("chest.dcm", window=Window(2048, 4096))  # doctest: +SKIP
"""

from insightray.imaging.dicom import read_phi
from insightray.imaging.io import (
    detect_format,
    expand_inputs,
    image_paths,
    read_image,
    save_png,
    write_png,
)
from insightray.imaging.types import DEFAULT_MAX_PIXELS, ImageMeta, LoadedImage, Window

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageMeta",
    "LoadedImage",
    "Window",
    "detect_format",
    "expand_inputs",
    "image_paths",
    "read_image",
    "read_phi",
    "save_png",
    "write_png",
]

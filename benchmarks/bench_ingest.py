"""Decode + preprocess throughput: Insight Ray's imaging package against the obvious baseline.

Both pipelines turn each file into a 3 x 640 x 640 float32 model input: decode, modality LUT,
VOI (window) to [0, 1], MONOCHROME1 inversion, optional CLAHE, letterbox, grayscale to 3
channels. The baseline is plain pydicom + numpy + OpenCV written the obvious way (float64 LUTs,
8-bit CLAHE). One process, 2 threads; every image is read once per repetition, best of N.

Usage:
    python benchmarks/bench_ingest.py [--repeats 3] [--size 640]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import cv2
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from insightray.config import data_root
from insightray.imaging import read_image
from insightray.imaging.transforms import Clahe, ToChannels, letterbox


def baseline(path: Path, size: int, clahe: bool) -> np.ndarray:
    """The obvious way: pydicom/OpenCV, 8-bit in the middle."""
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        values = ds.pixel_array
        if values.ndim == 3:  # colour (the YBR CT slice): the obvious way is cvtColor
            values = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)
        else:
            values = apply_voi_lut(apply_modality_lut(values, ds), ds)
        values = (values - values.min()) / max(values.max() - values.min(), 1e-6)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            values = 1.0 - values
        gray = (values * 255).astype(np.uint8)
    else:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if clahe:
        gray = cv2.createCLAHE(2.0, (8, 8)).apply(gray)
    rows, cols = gray.shape
    scale = size / max(rows, cols)
    resized = cv2.resize(gray, (round(cols * scale), round(rows * scale)))
    top = (size - resized.shape[0]) // 2
    left = (size - resized.shape[1]) // 2
    padded = cv2.copyMakeBorder(
        resized,
        top,
        size - resized.shape[0] - top,
        left,
        size - resized.shape[1] - left,
        cv2.BORDER_CONSTANT,
    )
    return np.stack([padded] * 3).astype(np.float32) / 255.0


def ours(path: Path, size: int, clahe: bool) -> np.ndarray:
    """Insight Ray: float32 throughout, CLAHE at 16-bit precision after the letterbox."""
    pixels, _ = letterbox(read_image(path).pixels, size)
    if clahe:
        pixels = Clahe(2.0, (8, 8))(pixels)
    return ToChannels(3)(pixels)


def throughput(
    fn: Callable[[Path, int, bool], np.ndarray],
    files: list[Path],
    size: int,
    clahe: bool,
    repeats: int,
) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in files:
            fn(path, size, clahe)
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--jpegs", type=int, default=100, help="TBX11K 512-px JPEGs to use")
    args = parser.parse_args()
    cv2.setNumThreads(2)
    root = data_root()
    sets = {
        "shared DICOM (4 files, 0.5-3.6 MP)": sorted((root / "dicom").glob("*.dcm")),
        f"TBX11K 512-px JPEG ({args.jpegs})": sorted(
            (root / "cxr" / "tbx11k" / "images").glob("*.jpg")
        )[: args.jpegs],
        "VinBigData 1024-px PNG (12)": sorted((root / "cxr" / "vinbigdata_sample").rglob("*.png")),
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"2 threads; size {args.size}; best of {args.repeats}"
    )
    print("| set | CLAHE | baseline img/s | Insight Ray img/s | ratio |")
    print("|---|---|---|---|---|")
    for name, files in sets.items():
        if not files:
            print(f"| {name} | - | missing | missing | - |")
            continue
        for clahe in (False, True):
            base = throughput(baseline, files, args.size, clahe, args.repeats)
            mine = throughput(ours, files, args.size, clahe, args.repeats)
            print(
                f"| {name} | {'yes' if clahe else 'no'} | {base:.1f} | {mine:.1f} | "
                f"{mine / base:.2f}x |"
            )


if __name__ == "__main__":
    main()

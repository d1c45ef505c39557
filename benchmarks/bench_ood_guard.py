"""How often the out-of-distribution guard flags in- and out-of-distribution images.

Runs a bundled image model (default: the chest detector) with its reference profile through
:class:`insightray.monitoring.guard.OodGuard`, exactly as ``insightray detect`` does, on:

- in distribution: held-out images of the model's own data (default TBX11K ``val_list.txt``,
  100 chest X-rays the profile never saw; ``--held-out`` for another model);
- the shared DICOMs: two chest CR, and a CR tibia and a CT head slice (in or out of
  distribution depending on the model);
- out of distribution: pydicom's bundled MR / US / CT / NM test files
  that decode, other X-rays (default: every bone X-ray of the fracture set; ``--other``), two
  real photographs (scikit-learn's sample images), blank and saturated images, and the
  held-out images inverted (as an uncorrected MONOCHROME1 would look).

For each set: images flagged (any warning) and images flagged by the pixels alone (the
content and intensity distances, ignoring the DICOM metadata rules). Prints a Markdown table
and the machine's CPU flags; ``--json`` writes every image's score and warnings.

    python benchmarks/bench_ood_guard.py --model cxr-tbx11k-yolov5s
    python benchmarks/fracture_train_list.py --held-out /tmp/fracture_held_out.txt /tmp/x.txt
    python benchmarks/bench_ood_guard.py --model fracture-roboflow-lite0 \
        --held-out /tmp/fracture_held_out.txt --other ../shared/data/cxr/tbx11k/val_list.txt
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.data import get_testdata_files
from sklearn.datasets import load_sample_images

from insightray.engine import load_predictor
from insightray.errors import InsightRayError
from insightray.imaging import ImageMeta, LoadedImage, image_paths, read_image
from insightray.models.catalog import resolve_card
from insightray.monitoring.guard import OodGuard

SHARED = Path(__file__).resolve().parents[1] / "../shared/data"
OTHER_MODALITIES = {"MR", "US", "CT", "NM"}


def _images(paths: list[Path]) -> list[tuple[str, LoadedImage]]:
    loaded = []
    for path in paths:
        try:
            loaded.append((path.name, read_image(path)))
        except InsightRayError:
            continue  # pydicom test files that are multi-frame, pixel-less or undecodable
    return loaded


def _array(name: str, pixels: NDArray[np.float64]) -> tuple[str, LoadedImage]:
    meta = ImageMeta("png", (int(pixels.shape[0]), int(pixels.shape[1])), "MONOCHROME2", 8)
    return name, LoadedImage(np.asarray(pixels, dtype=np.float32), meta)


def sets(
    shared: Path, held_out: Path | None, other: Path | None
) -> dict[str, Callable[[], list[tuple[str, LoadedImage]]]]:
    """Each benchmark set, read when asked for (the defaults suit the chest detector)."""
    tbx = shared / "cxr/tbx11k"
    dicom = sorted((shared / "dicom").glob("*.dcm"))
    held_out = held_out or tbx / "val_list.txt"
    other = other or shared / "fracture/bone_fracture_roboflow/images"

    def pydicom_files() -> list[tuple[str, LoadedImage]]:
        found = _images([Path(p) for p in get_testdata_files("*.dcm")])
        return [(n, i) for n, i in found if i.meta.modality in OTHER_MODALITIES]

    def photographs() -> list[tuple[str, LoadedImage]]:
        photos = load_sample_images().images
        return [_array(f"photo_{i}", p.mean(axis=2) / 255.0) for i, p in enumerate(photos)]

    def synthetic() -> list[tuple[str, LoadedImage]]:
        return [
            _array("blank_black", np.zeros((512, 512))),
            _array("blank_grey", np.full((512, 512), 0.5)),
            _array("saturated", np.ones((512, 512))),
        ]

    def inverted() -> list[tuple[str, LoadedImage]]:
        found = _images(image_paths(held_out))
        return [_array(f"inverted_{n}", 1.0 - i.pixels) for n, i in found]

    return {
        f"ID: held out, {held_out.parent.name}/{held_out.name}": lambda: _images(
            image_paths(held_out)
        ),
        "shared chest CR DICOMs": lambda: _images([p for p in dicom if "chest" in p.name]),
        "shared non-chest DICOMs (CR tibia, CT)": lambda: _images(
            [p for p in dicom if "chest" not in p.name]
        ),
        "OOD: pydicom MR/US/CT/NM files": pydicom_files,
        f"OOD: other X-rays, {other.parent.name}/{other.name}": lambda: _images(image_paths(other)),
        "OOD: photographs": photographs,
        "OOD: blank / saturated": synthetic,
        "OOD: held-out images inverted": inverted,
    }


def main() -> None:
    """Run every set; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="cxr-tbx11k-yolov5s")
    parser.add_argument("--shared", type=Path, default=SHARED.resolve())
    parser.add_argument("--json", type=Path, help="Write per-image scores and warnings here.")
    parser.add_argument("--held-out", type=Path, help="In-distribution .txt list (TBX11K val).")
    parser.add_argument("--other", type=Path, help="Other X-rays (default: the fracture set).")
    args = parser.parse_args()
    card_path = resolve_card(args.model, default="")
    predictor = load_predictor(card_path)
    guard = OodGuard.for_predictor(predictor, card_path)
    if guard is None:
        raise SystemExit(f"{args.model} has no profile.json: run `insightray monitor profile`")
    rows, details = [], {}
    seconds, count = 0.0, 0
    for name, read in sets(args.shared, args.held_out, args.other).items():
        images = read()
        started = time.perf_counter()
        results: list[Any] = []
        for start in range(0, len(images), 8):
            batch = [image for _, image in images[start : start + 8]]
            results += guard.run(lambda b=batch: predictor.predict(b), batch)  # type: ignore[misc]
        seconds += time.perf_counter() - started
        count += len(images)
        pixel_flags = [any(w.startswith(("content", "intensit", "blank", "saturated"))
                           for w in r.warnings) for r in results]  # fmt: skip
        flagged = sum(bool(r.warnings) for r in results)
        rows.append((name, len(images), flagged, sum(pixel_flags)))
        details[name] = [
            {"image": n, "ood_score": r.ood_score, "warnings": list(r.warnings)}
            for (n, _), r in zip(images, results, strict=True)
        ]
    print(f"model {args.model}; profile rate {guard.profile.rate}; {platform.processor()}")
    print("| set | images | flagged (any warning) | flagged by pixels alone |")
    print("|---|---|---|---|")
    for name, total, flagged, by_pixels in rows:
        print(f"| {name} | {total} | {flagged} ({100 * flagged / max(total, 1):.1f} %) "
              f"| {by_pixels} ({100 * by_pixels / max(total, 1):.1f} %) |")  # fmt: skip
    print(f"prediction + guard: {1000 * seconds / max(count, 1):.0f} ms per image")
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
    print("cpu flags:", " ".join(f for f in flags.split() if f.startswith(("avx", "sse4"))))
    if args.json:
        args.json.write_text(json.dumps(details, indent=1) + "\n")


if __name__ == "__main__":
    main()

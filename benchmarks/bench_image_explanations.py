"""Are the image heatmaps faithful? Deletion and insertion curves against random maps.

For each image the heatmap ranks the pixels. Deletion replaces the most salient pixels first
with the image's median grey, in 10 % steps; insertion starts from a heavily blurred copy and
puts the original pixels back in the same order. The model's score is followed along the way:
the fracture probability for the fracture classifier (Grad-CAM), the best box score of the
class first found (any box, down to a score of 0.001) for the chest X-ray detector (EigenCAM).
The reference in the same run is random maps of the same smoothness (uniform noise on a 16 x 16
grid, resized): a faithful map gives a smaller deletion area (the score falls faster) and a
larger insertion area. Differences are averaged over images with a bootstrap 95 % interval.

Images: the detector's TBX11K ``val_list.txt`` (not trained on) and the fracture classifier's
fractured test images of the group split (held out); the first ``--images`` of each.

Usage:
    .venv/bin/python benchmarks/bench_image_explanations.py [--images 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_cli_startup import cpu_flags  # noqa: E402
from bench_text_attribution import bootstrap  # noqa: E402

from insightray.config import data_root  # noqa: E402
from insightray.engine import load_predictor  # noqa: E402
from insightray.explain import eigencam_heatmap, gradcam_heatmap  # noqa: E402
from insightray.imaging import read_image  # noqa: E402

FloatArray = NDArray[np.float32]
STEPS = 10
RANDOM_MAPS = 2


def curves(
    image: FloatArray, heat: FloatArray, score: Callable[[list[FloatArray]], list[float]]
) -> tuple[float, float]:
    """Deletion and insertion areas (mean score over the 11 fractions) for one heat map."""
    order = np.argsort(-heat.ravel(), kind="stable")
    fill = np.full_like(image, float(np.median(image)))
    side = max(3, (max(image.shape) // 8) | 1)
    blurred = cv2.GaussianBlur(image, (side, side), 0)
    deleted, inserted = [], []
    for step in range(STEPS + 1):
        chosen = order[: round(step / STEPS * order.size)]
        mask = np.zeros(image.size, dtype=bool)
        mask[chosen] = True
        mask = mask.reshape(image.shape)
        deleted.append(np.where(mask, fill, image))
        inserted.append(np.where(mask, image, blurred))
    return float(np.mean(score(deleted))), float(np.mean(score(inserted)))


def random_map(shape: tuple[int, ...], rng: np.random.Generator) -> FloatArray:
    grid = rng.random((16, 16)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (shape[1], shape[0])), dtype=np.float32)


Scorer = Callable[[list[FloatArray]], list[float]]


def evaluate(
    images: list[FloatArray],
    explain: Callable[[FloatArray], FloatArray],
    scorer: Callable[[FloatArray], Scorer],
) -> dict[str, Any]:
    """Curves of every image's heatmap and of random maps; ``scorer(image)`` scores a batch
    of modified copies of ``image``."""
    rng = np.random.default_rng(0)
    rows: dict[str, list[float]] = {"del": [], "ins": [], "del_rand": [], "ins_rand": []}
    for image in images:
        score = scorer(image)
        deletion, insertion = curves(image, explain(image), score)
        rows["del"].append(deletion)
        rows["ins"].append(insertion)
        reference = [curves(image, random_map(image.shape, rng), score) for _ in range(RANDOM_MAPS)]
        rows["del_rand"].append(float(np.mean([r[0] for r in reference])))
        rows["ins_rand"].append(float(np.mean([r[1] for r in reference])))
    result: dict[str, Any] = {"images": len(images)}
    for curve in ("del", "ins"):
        ours, base = np.array(rows[curve]), np.array(rows[f"{curve}_rand"])
        low, high = bootstrap(ours - base)
        result[curve] = {
            "heatmap": round(float(ours.mean()), 4),
            "random_reference": round(float(base.mean()), 4),
            "difference": round(float((ours - base).mean()), 4),
            "ci95": [round(low, 4), round(high, 4)],
        }
    return result


def detector(count: int) -> dict[str, Any]:
    predictor = load_predictor(task="detection", backend="torch", conf_threshold=0.001)
    root = data_root() / "cxr" / "tbx11k"
    paths = [root / line for line in (root / "val_list.txt").read_text().split()[:count]]
    images = [read_image(path).pixels for path in paths]

    def scorer(image: FloatArray) -> Scorer:
        found = predictor.predict_arrays([image])[0].detections
        label = max(found, key=lambda d: d.score).class_name if found else ""

        def score(batch: list[FloatArray]) -> list[float]:
            results = predictor.predict_arrays(batch, batch_size=len(batch))
            return [max((d.score for d in r.detections if d.class_name == label), default=0.0)
                    for r in results]  # fmt: skip

        return score

    def explain(image: FloatArray) -> FloatArray:
        return eigencam_heatmap(predictor, image)

    result = evaluate(images, explain, scorer)
    return {"model": predictor.card.name, "method": "eigencam", **result}


def fracture(count: int) -> dict[str, Any]:
    from insightray.training.fracture.dataset import load_fracture_items, split_by_group

    predictor = load_predictor(task="classification")
    data = data_root() / "fracture" / "bone_fracture_roboflow"
    splits = split_by_group(load_fracture_items(data), seed=0)
    fractured = [item.path for item in splits.test if item.label == 1][:count]
    images = [read_image(Path(path)).pixels for path in fractured]

    def scorer(_image: FloatArray) -> Scorer:
        return lambda batch: [float(r.probability) for r in predictor.predict_arrays(batch)]

    def explain(image: FloatArray) -> FloatArray:
        return gradcam_heatmap(predictor, image)

    result = evaluate(images, explain, scorer)
    return {"model": predictor.card.name, "method": "gradcam", **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="Images per model.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [detector(args.images), fracture(args.images)]
    machine = cpu_flags()
    if args.json:
        print(json.dumps({"results": results, "machine": machine}, indent=2))
        return
    for result in results:
        for curve, name in (("del", "deletion (lower is better)"), ("ins", "insertion (higher)")):
            row = result[curve]
            print(
                f"{result['model']} {result['method']} {name}: {row['heatmap']:.3f} vs random "
                f"{row['random_reference']:.3f}, difference {row['difference']:+.3f} "
                f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}] ({result['images']} images)"
            )
    print(machine)


if __name__ == "__main__":
    main()

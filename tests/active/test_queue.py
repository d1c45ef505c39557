"""The labelling queue with real models on real radiographs.

The ambiguous image is made, not found: the blend of a radiograph the bundled fracture model
calls surely fractured and one it calls surely not, with the blend weight bisected until the
model says 0.5. Every uncertainty strategy must put that blend first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from insightray.active import rank_for_labelling
from insightray.engine import load_predictor
from insightray.engine.classification import FracturePredictor
from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging import read_image, write_png
from tests.test_cli_detect import cli


@pytest.fixture(scope="module")
def fracture_predictor(one_thread: None) -> FracturePredictor:
    return load_predictor(task="classification")


@pytest.fixture(scope="module")
def three_images(
    shared_data: Path,
    fracture_predictor: FracturePredictor,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Path]]:
    root = shared_data / "fracture" / "bone_fracture_roboflow"
    if not (root / "images.csv").is_file():
        pytest.skip("bone fracture data not found")
    paths = sorted((root / "images").rglob("*.jpg"))[:40]
    pixels = [read_image(path).pixels for path in paths]
    probabilities = [r.probability for r in fracture_predictor.predict_arrays(pixels)]
    positive, negative = int(np.argmax(probabilities)), int(np.argmin(probabilities))
    # A clearly fractured and a clearly normal image among the first 40 (calibrated models, whose
    # scores are less extreme, pass too).
    assert probabilities[positive] > 0.75 and probabilities[negative] < 0.25, probabilities
    a = pixels[positive].astype(np.float32)
    b = cv2.resize(pixels[negative].astype(np.float32), (a.shape[1], a.shape[0]))
    low, high = 0.0, 1.0  # weight of the fractured image
    for _ in range(14):
        mid = (low + high) / 2
        p = fracture_predictor.predict_arrays([mid * a + (1 - mid) * b])[0].probability
        low, high = (low, mid) if p > 0.5 else (mid, high)
    blend = ((low + high) / 2) * a + (1 - (low + high) / 2) * b
    folder = tmp_path_factory.mktemp("queue")
    out = {"fractured": paths[positive], "normal": paths[negative]}
    out["ambiguous"] = folder / "ambiguous.png"
    write_png(np.clip(blend, 0, 1).astype(np.float32), out["ambiguous"], bits=16)
    yield out


@pytest.mark.parametrize("strategy", ["entropy", "margin", "bald"])
def test_ambiguous_image_ranks_first(
    strategy: str, fracture_predictor: FracturePredictor, three_images: dict[str, Path]
) -> None:
    p = fracture_predictor.predict_paths([three_images["ambiguous"]])[0].probability
    assert 0.3 < p < 0.7  # still ambiguous after the PNG round trip
    queue = rank_for_labelling(
        fracture_predictor, list(three_images.values()), strategy, n=3, passes=30
    )
    assert Path(queue.items[0].path) == three_images["ambiguous"]
    scores = [item.score for item in queue.items]
    assert scores == sorted(scores, reverse=True)
    assert queue.to_dict()["items"][0]["path"] == str(three_images["ambiguous"])


def test_badge_starts_with_the_ambiguous_image(
    fracture_predictor: FracturePredictor, three_images: dict[str, Path]
) -> None:
    queue = rank_for_labelling(fracture_predictor, list(three_images.values()), "badge", n=3)
    assert Path(queue.items[0].path) == three_images["ambiguous"]
    assert len({item.path for item in queue.items}) == 3
    assert queue.items[0].score > 0


def test_coreset_and_random_and_labelled_exclusion(
    fracture_predictor: FracturePredictor, three_images: dict[str, Path]
) -> None:
    paths = list(three_images.values())
    queue = rank_for_labelling(
        fracture_predictor, paths, "coreset", n=2, labelled=[three_images["normal"]]
    )
    assert len(queue.items) == 2
    assert str(three_images["normal"]) not in {item.path for item in queue.items}
    first = rank_for_labelling(fracture_predictor, paths, "random", n=3, seed=1)
    again = rank_for_labelling(fracture_predictor, paths, "random", n=3, seed=1)
    assert first == again
    with pytest.raises(ConfigError):
        rank_for_labelling(fracture_predictor, paths, "tta", n=3)
    with pytest.raises(InputNotFoundError):
        rank_for_labelling(fracture_predictor, paths[:1], "entropy", labelled=paths[:1])


def test_detector_queue_on_real_chest_xrays(shared_data: Path, one_thread: None) -> None:
    root = shared_data / "cxr" / "tbx11k"
    if not (root / "val_list.txt").is_file():
        pytest.skip("TBX11K sample not found")
    paths = [root / e for e in (root / "val_list.txt").read_text().split()[:3]]
    predictor = load_predictor(task="detection", conf_threshold=0.05)
    for strategy in ("tta", "entropy"):
        queue = rank_for_labelling(predictor, paths, strategy, n=3, batch_size=2)
        scores = [item.score for item in queue.items]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
    with pytest.raises(ConfigError):
        rank_for_labelling(predictor, paths, "bald", n=3)


def test_cli_label_queue_json(three_images: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    folder.mkdir()
    for name, path in three_images.items():
        shutil.copy(path, folder / f"{name}{path.suffix}")
    code, stdout, stderr = cli("label", "queue", "--data", str(folder), "--n", "3", "--json")
    assert code == 0, stderr
    items = json.loads(stdout)["items"]
    assert Path(items[0]["path"]).stem == "ambiguous"
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    code, _, stderr = cli("label", "queue", "--data", str(folder), "--strategy", "tta")
    assert code != 0 and "not offered for a classifier" in stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = cli("label", "queue", "--data", str(empty))
    assert code != 0 and "error" in stderr

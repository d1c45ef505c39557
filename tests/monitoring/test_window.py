"""The rolling drift window: bounded, due once full then every N images, cheap figures that
carry the last comparison, against the bundled detector's real reference profile."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.config import data_root
from insightray.errors import ConfigError
from insightray.imaging import read_image
from insightray.models.catalog import resolve_card
from insightray.monitoring.features import FeatureTable, image_features
from insightray.monitoring.guard import Verdict
from insightray.monitoring.profile import load_profile
from insightray.monitoring.window import DriftWindow

TBX11K = data_root() / "cxr" / "tbx11k"


@pytest.fixture(scope="module")
def reference() -> FeatureTable:
    profile = load_profile(resolve_card("cxr-tbx11k-yolov5s", default=""))
    assert profile is not None
    return profile.table


def _add(window: DriftWindow, reference: FeatureTable, start: int, count: int,
         flagged: bool = False) -> bool:  # fmt: skip
    """Rows of real TBX11K images with reference embeddings (rows ``start``...)."""
    names = (TBX11K / "val_list.txt").read_text().split()[:count]
    features = [image_features(read_image(TBX11K / name)) for name in names]
    verdicts = [Verdict(2.0 if flagged else 0.3, ("x",) if flagged else ()) for _ in names]
    outputs = [{"output_boxes": 1.0, "output_max_score": 0.5} for _ in names]
    embeddings = reference.embedding[start : start + count]
    return window.add(features, embeddings, verdicts, outputs)


def test_window_is_due_when_full_then_every_n_and_stays_bounded(
    reference: FeatureTable,
) -> None:
    window = DriftWindow(reference, size=6, minimum=4, every=3, permutations=50)
    assert len(window.reference) == 300  # a seeded sample of the 500 profiled images
    assert not _add(window, reference, 0, 3)
    before = window.figures()
    assert before.images == 3 and before.ood_rate == 0.0 and not before.tested
    assert before.score_mean == pytest.approx(0.5) and before.psi_max is None
    assert _add(window, reference, 3, 1)  # the minimum reached: due
    assert not _add(window, reference, 4, 2)
    assert _add(window, reference, 6, 1, flagged=True)  # 3 since the last: due again
    assert len(window) == 6  # bounded
    figures = window.evaluate()
    assert figures.tested and figures.tested_images == 6 and figures.images == 6
    assert figures.ood_rate == pytest.approx(1 / 6)
    assert set(figures.psi) >= {"mean", "modality", "output_max_score"}
    assert figures.psi_max == max(figures.psi.values())
    assert figures.embedding_p_value is not None and 0 < figures.embedding_p_value <= 1
    _add(window, reference, 7, 2, flagged=True)  # figures move; the test result is kept
    later = window.figures()
    assert later.ood_rate == pytest.approx(3 / 6) and later.psi == figures.psi


def test_outputs_far_from_the_reference_drift(reference: FeatureTable) -> None:
    window = DriftWindow(reference, size=8, minimum=8, every=8, permutations=50)
    rng = np.random.default_rng(0)
    names = (TBX11K / "val_list.txt").read_text().split()[:8]
    features = [image_features(read_image(TBX11K / name)) for name in names]
    far = reference.embedding[:8] + 50 * rng.standard_normal(reference.embedding[:8].shape)
    outputs = [{"output_boxes": 30.0, "output_max_score": 0.99}] * 8
    assert window.add(features, far, [Verdict(0.3, ())] * 8, outputs)
    figures = window.evaluate()
    assert figures.drift and figures.embedding_p_value is not None
    assert figures.embedding_p_value < 0.05 and figures.psi["output_boxes"] > 1


def test_window_settings_are_checked(reference: FeatureTable) -> None:
    for size, minimum, every in ((10, 1, 5), (10, 11, 5), (10, 5, 0)):
        with pytest.raises(ConfigError):
            DriftWindow(reference, size=size, minimum=minimum, every=every)

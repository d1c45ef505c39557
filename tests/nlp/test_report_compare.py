"""AI versus report: the detector-to-observation mapping, the comparison both ways, the draft."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insightray.errors import ConfigError
from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.nlp.reports import OBSERVATIONS, ReportLabeller
from insightray.nlp.reports.compare import DetectorMapping, compare
from insightray.nlp.reports.draft import draft_report

DETECTOR = "cxr-tbx11k-yolov5s"
ACTIVE = {"class_name": "ActiveTuberculosis", "score": 0.8, "box": [10, 10, 40, 30]}
HEALED = {"class_name": "ObsoletePulmonaryTuberculosis", "score": 0.5, "box": [60, 70, 90, 95]}


@pytest.fixture(scope="module")
def mapping() -> DetectorMapping:
    return DetectorMapping()


def test_mapping_covers_the_bundled_detector_and_every_observation(
    mapping: DetectorMapping,
) -> None:
    card = load_card(bundled_models_dir() / DETECTOR / "card.json")
    known = mapping.for_model(DETECTOR)
    assert known is not None and set(known.classes) == set(card.labels)
    assert set(known.sees) | set(known.cannot_see) == set(OBSERVATIONS[1:])
    assert "Pleural Effusion" in known.cannot_see and "Lung Opacity" in known.sees
    # another registered name of the same detector is recognised by its classes
    assert mapping.for_model("my-tb-detector", ["ActiveTuberculosis"]) is known
    assert mapping.for_model("my-tb-detector", ["Nodule"]) is None


def test_bad_mapping_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"models": {"x": {"classes": {"A": {"observations": ["Tumour"]}}}}}))
    with pytest.raises(ConfigError, match="unknown observations"):
        DetectorMapping(bad)
    both = {"classes": {"A": {"observations": ["Edema"]}}, "cannot_see": ["Edema"]}
    bad.write_text(json.dumps({"models": {"x": both}}))
    with pytest.raises(ConfigError, match="both mapped and not visible"):
        DetectorMapping(bad)
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="models"):
        DetectorMapping(bad)


@pytest.mark.parametrize(
    ("findings", "statuses", "expected"),
    [
        # the model sees a lesion where the report says the lungs are clear
        (
            [ACTIVE],
            {"No Finding": "positive", "Lung Opacity": "negative"},
            [("model_only", "negative")],
        ),
        # ... where the report says nothing of the lungs
        (
            [ACTIVE],
            {"Cardiomegaly": "positive"},
            [("model_only", "absent"), ("not_visible", "positive")],
        ),
        # agreement: no discrepancy
        ([ACTIVE, HEALED], {"Lung Opacity": "positive"}, []),
        ([HEALED], {"Lung Lesion": "uncertain"}, []),
        # the report names what the model could see but did not
        (
            [],
            {"Consolidation": "positive", "Pneumonia": "uncertain"},
            [("report_only", "positive"), ("report_only", "uncertain")],
        ),
        # healed TB does not stand for pneumonia: the report's pneumonia is unseen
        (
            [HEALED],
            {"Pneumonia": "positive"},
            [("model_only", "absent"), ("report_only", "positive")],
        ),
        # what the model cannot see is said as such, not as a miss
        (
            [],
            {"Pleural Effusion": "positive", "Pneumothorax": "negative"},
            [("not_visible", "positive")],
        ),
    ],
)
def test_comparison_both_ways(
    mapping: DetectorMapping,
    findings: list[dict[str, object]],
    statuses: dict[str, str],
    expected: list[tuple[str, str]],
) -> None:
    result = compare(findings, statuses, DETECTOR, mapping)
    assert [(d["kind"], d["report_status"]) for d in result["discrepancies"]] == expected
    assert all(d["message"].endswith(".") for d in result["discrepancies"])


def test_unknown_detector_is_not_compared(mapping: DetectorMapping) -> None:
    result = compare([{"class_name": "Nodule"}], {"Lung Lesion": "negative"}, "other", mapping)
    assert result["discrepancies"] == [] and "no observation mapping" in result["note"]


def test_draft_is_marked_names_zones_and_reads_back(mapping: DetectorMapping) -> None:
    labeller = ReportLabeller()
    draft = draft_report([ACTIVE, HEALED], DETECTOR, "1.1.0", mapping, (100, 100), "PA")
    assert draft["ai_generated"] and draft["text"].startswith("AI-GENERATED DRAFT (")
    assert "right upper zone" in draft["text"] and "left lower zone" in draft["text"]
    assert "PA view." in draft["text"] and "not assessed by AI" in draft["text"]
    assert labeller.label(draft["text"]).positive() == ["Lung Opacity"]
    empty = draft_report([], DETECTOR, "1.1.0", mapping)
    assert labeller.label(empty["text"]).positive() == ["No Finding"]
    assert "zone" not in empty["text"]

"""The chest X-ray report labeller: sections, negation, uncertainty, No Finding, modifiers.

The reports here are written for these tests (the Indiana reports are CC BY-NC-ND and stay out
of the repository); the last test scores real reports when the shared data is present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insightray.cli import app
from insightray.config import data_root
from insightray.errors import ConfigError, InputError
from insightray.nlp.reports import OBSERVATIONS, ReportLabeller
from insightray.nlp.reports.evaluation import read_iu_reports, score
from insightray.nlp.reports.rules import MentionRules

ISSUE_SENTENCE = "Chest X-ray shows no evidence of pneumothorax but a small left pleural effusion."


@pytest.fixture(scope="module")
def labeller() -> Iterator[ReportLabeller]:
    yield ReportLabeller()


def statuses(labeller: ReportLabeller, text: str) -> dict[str, str]:
    return {o.label: o.status for o in labeller.label(text).observations if o.status != "absent"}


def test_issue_sentence_negated_pneumothorax_and_small_left_effusion(
    labeller: ReportLabeller,
) -> None:
    labels = labeller.label(ISSUE_SENTENCE)
    assert [o.label for o in labels.observations] == list(OBSERVATIONS)
    assert labels.status("Pneumothorax") == "negative"
    (effusion,) = next(o for o in labels.observations if o.label == "Pleural Effusion").evidence
    assert effusion.status == "positive" and effusion.text == "pleural effusion"
    assert effusion.laterality == ("left",) and effusion.severity == ("small",)
    assert labels.status("No Finding") == "absent"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FINDINGS: No pleural effusion or pneumothorax.", {"Pleural Effusion": "negative",
         "Pneumothorax": "negative", "No Finding": "positive"}),
        ("IMPRESSION: Bibasilar opacities may represent atelectasis versus pneumonia.",
         {"Lung Opacity": "positive", "Atelectasis": "uncertain", "Pneumonia": "uncertain"}),
        ("Heart size is normal. Lungs are clear.", {"Cardiomegaly": "negative",
         "Lung Opacity": "negative", "No Finding": "positive"}),
        ("Stable cardiomegaly. Previously seen effusion has resolved.",
         {"Cardiomegaly": "positive", "Pleural Effusion": "negative"}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": "uncertain"}),
        ("No pericardial effusion. Left PICC line tip in the SVC.",
         {"Support Devices": "positive", "No Finding": "positive"}),
        ("Old healed right rib fractures. No XXXX consolidation.",
         {"Fracture": "positive", "Consolidation": "negative"}),
        # findings outside the 14 keep a study from being normal; negated ones do not
        ("Lungs are clear. Calcified granuloma in the left lung base.",
         {"Lung Opacity": "negative"}),
        ("No pneumothorax. Mild degenerative changes of the thoracic spine.",
         {"Pneumothorax": "negative"}),
        ("Lungs are clear. No hiatal hernia.",
         {"Lung Opacity": "negative", "No Finding": "positive"}),
        # report phrasing that does not assert the finding
        ("Right basal airspace disease. Please correlate clinically for pneumonia.",
         {"Lung Opacity": "positive", "Pneumonia": "uncertain"}),
        ("Evidence of previous granulomatous infection.", {}),
    ],
)  # fmt: skip
def test_statuses(labeller: ReportLabeller, text: str, expected: dict[str, str]) -> None:
    assert statuses(labeller, text) == expected


def test_indication_and_history_never_count(labeller: ReportLabeller) -> None:
    text = (
        "INDICATION: Pneumonia? HISTORY: pleural effusion.\n"
        "COMPARISON: None.\nFINDINGS: Normal heart size. No focal consolidation.\n"
        "IMPRESSION: No acute cardiopulmonary abnormality."
    )
    labels = labeller.label(text)
    names = [s.name for s in labels.sections]
    assert names == ["INDICATION", "HISTORY", "COMPARISON", "FINDINGS", "IMPRESSION"]
    assert all(text[s.start : s.end] == s.text for s in labels.sections)
    assert statuses(labeller, text) == {
        "Cardiomegaly": "negative",
        "Consolidation": "negative",
        "No Finding": "positive",
    }


def test_modifiers_and_json(labeller: ReportLabeller) -> None:
    labels = labeller.label("FINDINGS: New 8 mm nodule in the right upper lobe.", "a1")
    (nodule,) = next(o for o in labels.observations if o.label == "Lung Lesion").evidence
    assert (nodule.size, nodule.laterality, nodule.change) == (("8 mm",), ("right",), ("new",))
    record = json.loads(json.dumps(labels.to_dict()))
    assert record["id"] == "a1" and record["sections"][0]["name"] == "FINDINGS"
    assert record["observations"][3]["evidence"][0]["section"] == "FINDINGS"
    with pytest.raises(InputError):
        labeller.label("  ")


def test_bad_rules_are_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "rules.json"
    bad.write_text(json.dumps({"observations": [{"label": "Edema", "mentions": ["(oops"]}]}))
    with pytest.raises(ConfigError):
        MentionRules(bad)
    bad.write_text(json.dumps({"observations": [{"label": "Flu", "mentions": ["flu"]}]}))
    with pytest.raises(ConfigError):
        MentionRules(bad)


def test_cli_report_label_text_and_jsonl(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["nlp", "report", ISSUE_SENTENCE, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    status = {o["label"]: o["status"] for o in record["observations"]}
    assert status["Pneumothorax"] == "negative" and status["Pleural Effusion"] == "positive"
    lines = tmp_path / "reports.jsonl"
    lines.write_text('{"id": 7, "text": "No pneumothorax."}\n{"id": "b", "text": "Edema."}\n')
    result = runner.invoke(app, ["nlp", "report", "--file", str(lines), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["id"] for r in records] == ["7", "b"]
    table = runner.invoke(app, ["nlp", "report", "Small right pneumothorax."])
    assert table.exit_code == 0 and "Pneumothorax" in table.stdout


def test_cli_analyze_routes_the_issue_sentence_to_the_report_structurer() -> None:
    result = CliRunner().invoke(app, ["nlp", "analyze", ISSUE_SENTENCE, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    entities = {e["text"]: e for e in record["entities"]}
    assert entities["pneumothorax"]["negated"] and not entities["pleural effusion"]["negated"]
    assert record["diseases"] == [] and "radiology report" in record["abstained"]
    observations = {o["label"]: o for o in record["report"]["observations"]}
    assert observations["Pneumothorax"]["status"] == "negative"
    (effusion,) = observations["Pleural Effusion"]["evidence"]
    assert effusion["status"] == "positive"
    assert (effusion["severity"], effusion["laterality"]) == (["small"], ["left"])
    symptoms = CliRunner().invoke(app, ["nlp", "analyze", "Itchy red rash.", "--json"])
    assert json.loads(symptoms.stdout.strip().splitlines()[-1])["report"] is None


ARCHIVE = data_root() / "text/reports/iu_xray_dev/NLMCXR_reports_odd.tgz"


@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"shared data not found at {ARCHIVE}")
def test_real_reports_beat_keyword_matching(labeller: ReportLabeller) -> None:
    reports = list(read_iu_reports(ARCHIVE))[:150]
    truth = [r.reference for r in reports]
    ours = score([set(labeller.label(r.text).positive()) for r in reports], truth, rounds=0)
    keywords = [{m.label for m in labeller.rules.find(r.text)} for r in reports]
    plain = score(keywords, truth, rounds=0)
    assert ours.macro_f1 >= 0.7 and ours.macro_f1 > plain.macro_f1 + 0.2

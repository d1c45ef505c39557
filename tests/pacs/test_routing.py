"""Routing rules as data: the first fitting rule wins, and every mistake in the file is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from insightray.errors import ConfigError, InputNotFoundError
from insightray.pacs.routing import load_routing, routing_from_dict

WEB = {"dicomweb": "http://127.0.0.1:8042/dicom-web"}


def _rule(**overrides: object) -> dict[str, object]:
    return {"name": "r", "task": "detection", "destination": WEB, **overrides}


def test_first_fitting_rule_wins_and_matching_is_case_blind() -> None:
    config = routing_from_dict(
        {
            "rules": [
                _rule(name="bones", match={"series_description": "(?i)tibia"}),
                _rule(name="chest", match={"modality": ["cr", "DX"], "body_part": "chest"}),
            ]
        }
    )
    chest = {"Modality": "CR", "BodyPartExamined": "CHEST", "SeriesDescription": "PA"}
    tibia = {"Modality": "CR", "BodyPartExamined": "LEG", "SeriesDescription": "Tibia AP"}
    report = {"Modality": "SR"}
    assert config.route_for(chest).name == "chest"  # type: ignore[union-attr]
    assert config.route_for(tibia).name == "bones"  # type: ignore[union-attr]
    assert config.route_for(report) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rules": []}, "at least one rule"),
        ({"rules": [_rule()], "extra": 1}, "unknown keys \\['extra'\\]"),
        ({"rules": [_rule(task="segmentation")]}, "task must be one of"),
        ({"rules": [_rule(destination={})]}, "exactly one of dicomweb or cstore"),
        ({"rules": [_rule(destination={"cstore": {"host": "h"}})]}, "needs host, port and aet"),
        ({"rules": [_rule(match={"series_description": "("})]}, "not a regular expression"),
        ({"rules": [_rule(match={"colour": ["red"]})]}, "unknown keys \\['colour'\\]"),
        ({"rules": [_rule()], "retry": {"attempts": 0}}, "attempts must be at least 1"),
        (
            {"rules": [_rule(task="classification", presentation_state=True)]},
            "presentation_state draws boxes",
        ),
        ({"rules": [_rule(presentation_state="yes")]}, "must be true or false"),
    ],
)
def test_invalid_routing_is_a_config_error(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        routing_from_dict(raw)


def test_load_routing_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "rules:\n  - name: chest\n    task: detection\n"
        "    destination: {cstore: {host: 127.0.0.1, port: 4242, aet: ORTHANC}}\n"
        "retry: {attempts: 5, backoff_s: 0.1}\ndead_letter: /tmp/dl\n"
    )
    config = load_routing(path)
    assert config.rules[0].cstore is not None and config.rules[0].cstore.port == 4242
    assert (config.retry.attempts, config.dead_letter) == (5, Path("/tmp/dl"))
    with pytest.raises(InputNotFoundError):
        load_routing(tmp_path / "missing.yaml")

"""The viewer's labelling mode agrees with the API: the roles it is offered to are those the
labelling routes accept, and its strategy chooser offers what the queue route accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from insightray.active import CLASSIFIER_STRATEGIES
from insightray.serving.security.roles import Permission, Role, can

WEB = Path(__file__).parents[2] / "insightray" / "serving" / "web"


def test_labeller_roles_match_the_permissions_of_the_labelling_routes() -> None:
    match = re.search(
        r"LABELLER_ROLES = (\[[^\]]*\])", (WEB / "labelling.js").read_text(encoding="utf-8")
    )
    assert match, "labelling.js no longer defines LABELLER_ROLES"
    offered = set(json.loads(match.group(1)))
    # GET /v1/labels/queue needs ANALYZE (Analyst), POST /v1/labels/{id} STUDY_WRITE.
    allowed = {
        role.value
        for role in Role
        if can(role, Permission.ANALYZE) and can(role, Permission.STUDY_WRITE)
    }
    assert offered == allowed


def test_strategy_chooser_offers_the_strategies_of_the_queue_route() -> None:
    page = (WEB / "index.html").read_text(encoding="utf-8")
    chooser = re.search(r'<select id="label-strategy".*?</select>', page, re.S)
    assert chooser, "index.html no longer has the strategy chooser"
    assert re.findall(r'<option value="([^"]+)"', chooser.group(0)) == list(CLASSIFIER_STRATEGIES)

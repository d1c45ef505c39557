"""The viewer offers the labelling mode to exactly the roles the labelling routes accept."""

from __future__ import annotations

import json
import re
from pathlib import Path

from insightray.serving.security.roles import Permission, Role, can

LABELLING_JS = Path(__file__).parents[2] / "insightray" / "serving" / "web" / "labelling.js"


def test_labeller_roles_match_the_permissions_of_the_labelling_routes() -> None:
    match = re.search(r"LABELLER_ROLES = (\[[^\]]*\])", LABELLING_JS.read_text(encoding="utf-8"))
    assert match, "labelling.js no longer defines LABELLER_ROLES"
    offered = set(json.loads(match.group(1)))
    # GET /v1/labels/queue needs ANALYZE (Analyst), POST /v1/labels/{id} STUDY_WRITE.
    allowed = {
        role.value
        for role in Role
        if can(role, Permission.ANALYZE) and can(role, Permission.STUDY_WRITE)
    }
    assert offered == allowed

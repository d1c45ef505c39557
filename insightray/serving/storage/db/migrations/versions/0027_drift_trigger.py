"""The retraining trigger also fires on drift: a ``drifted`` flag per model version.

Revision ID: 0027_drift_trigger
Revises: 0026_feedback
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_drift_trigger"
down_revision = "0026_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "retraining_triggers",
        sa.Column("drifted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("retraining_triggers") as batch:
        batch.drop_column("drifted")

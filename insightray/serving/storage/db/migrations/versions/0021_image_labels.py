"""Image labels from the labelling loop (issue 21): one row per save, with user and time.

Revision ID: 0021_labels
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_labels"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_labels",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "study_id", sa.String(32), sa.ForeignKey("studies.id"), nullable=False, index=True
        ),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("image_labels")

"""Reports saved with a study: one row per saved version, the text in the encrypted store.

Revision ID: 0024_study_reports
Revises: 0023_conversations
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_study_reports"
down_revision = "0023_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("text_key", sa.String(64), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_study_reports_study_id", "study_reports", ["study_id"])
    op.create_index("ix_study_reports_created_at", "study_reports", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_study_reports_created_at", table_name="study_reports")
    op.drop_index("ix_study_reports_study_id", table_name="study_reports")
    op.drop_table("study_reports")

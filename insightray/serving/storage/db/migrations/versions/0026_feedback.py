"""Readers' verdicts on AI findings and the retraining trigger's state per model version.

Revision ID: 0026_feedback
Revises: 0025_measurement_frame
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_feedback"
down_revision = "0025_measurement_frame"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("result_id", sa.String(32), sa.ForeignKey("results.id"), nullable=False),
        sa.Column("study_id", sa.String(32), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("finding", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("model_label", sa.String(128), nullable=False),
        sa.Column("operating", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("label", sa.String(128), nullable=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("result_id", "finding", "username", name="uq_finding_feedback_reader"),
    )
    op.create_index("ix_finding_feedback_result_id", "finding_feedback", ["result_id"])
    op.create_index("ix_finding_feedback_study_id", "finding_feedback", ["study_id"])
    op.create_index(
        "ix_finding_feedback_model",
        "finding_feedback",
        ["model_name", "model_version", "updated_at"],
    )
    op.create_table(
        "retraining_triggers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("below", sa.Boolean(), nullable=False),
        sa.Column("crossings", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "model_version", name="uq_retraining_triggers_model"),
    )


def downgrade() -> None:
    op.drop_table("retraining_triggers")
    op.drop_index("ix_finding_feedback_model", table_name="finding_feedback")
    op.drop_index("ix_finding_feedback_study_id", table_name="finding_feedback")
    op.drop_index("ix_finding_feedback_result_id", table_name="finding_feedback")
    op.drop_table("finding_feedback")

"""The frame of a multi-frame image a measurement was made on.

Revision ID: 0025_measurement_frame
Revises: 0024_study_reports
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_measurement_frame"
down_revision = "0024_study_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("frame", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("frame")

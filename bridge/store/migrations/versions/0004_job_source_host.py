"""job ownership: the host a job was imported on (jobs.source_host)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

A job id belongs to the source that created it: (host, source_file, source_kind). Rows made
before this revision have no host (NULL): they are owned by their file and kind on whichever
host imports that file next, which then records its name.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_host", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("source_host")

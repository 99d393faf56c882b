"""fleets: consolidation groups (one Celery job standing for the same line on many hosts)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

``fleet_members``: one row per host-bound job consolidated into a group job (``group_id``, a
job in ``jobs``): the member's legacy line keeps running on its host under the group's
authority, and Celery runs only the group job (see :mod:`bridge.services.fleet`). A job is in
at most one group (``member_id`` is the key). A separate table, not the member's spec: a
re-import of the member's file rewrites its spec and must not undo the consolidation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_members",
        sa.Column("member_id", sa.String(length=200), nullable=False),
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_fleet_members")),
    )
    op.create_index(op.f("ix_fleet_members_group_id"), "fleet_members", ["group_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fleet_members_group_id"), table_name="fleet_members")
    op.drop_table("fleet_members")

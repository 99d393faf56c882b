"""registry identity (registry_meta)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

One row per fact about the registry itself. ``registry_id`` names this registry in Redis, so a
RedBeat key prefix is never synced by two registries at once (the second one is refused).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_registry_meta")),
    )
    op.bulk_insert(table, [{"key": "registry_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("registry_meta")

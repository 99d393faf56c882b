"""Alembic environment: the bridge passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from bridge.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the bridge always passes a connection
    raise RuntimeError("run migrations through `bridge db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

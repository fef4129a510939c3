"""observations.queued_requests: requests waiting for a first token when the interval ended.

The Prometheus source reads the frontend's ``dynamo_frontend_queued_requests`` gauge when it is
exported, and the simulated frontends compute the same number; until now it was dropped before
the write. Stored so that an operator can see, beside a decision, how deep the queue was.
Observations stored before this migration keep NULL (the frontend's answer is unknown).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable ADD COLUMN: instant on both dialects; no view selects observations.*.
    op.add_column("observations", sa.Column("queued_requests", sa.Float(), nullable=True))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite >= 3.35, PostgreSQL), as 0003 does.
    op.execute("ALTER TABLE observations DROP COLUMN queued_requests")

"""observations.arrival_counts / arrival_window_s: the per-second arrival pattern of each interval.

The default policy sizes prefill for the worst burst pattern of the last few intervals. The
patterns lived only in the planner process, so a planner started per interval (a Prefect flow
run) or restarted after a crash sized without them. Stored here, a new process restores them,
and an operator can see with SQL what burst a decision planned for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): instant on both dialects, rows already stored
    # keep every value and read NULL = "the source could not tell".
    op.add_column("observations", sa.Column("arrival_counts", JSONDOC, nullable=True))
    op.add_column("observations", sa.Column("arrival_window_s", sa.Float(), nullable=True))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite >= 3.35, PostgreSQL): batch mode would copy the table and
    # trip over the views of 0002 that read it.
    op.execute("ALTER TABLE observations DROP COLUMN arrival_window_s")
    op.execute("ALTER TABLE observations DROP COLUMN arrival_counts")

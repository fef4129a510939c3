"""decisions.prefill_infeasible_num_req: requests too long for the TTFT SLA, left out of the sizing.

A prompt whose prefill alone takes longer than the TTFT SLA cannot meet it on any number of
engines; the default policy leaves such requests out of the prefill pool's size and records how
many of the planned requests they were (planner_core/feasibility.py). Decisions stored before
this migration keep NULL: unknown, not zero. ``v_decisions`` (``dc.*``) is recreated with the
same body so that PostgreSQL, which expands ``*`` when a view is created, shows the new column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _v_decisions() -> str:
    """``v_decisions`` as revision 0007 left it (read from that revision, not copied)."""
    path = Path(__file__).with_name("0007_simulated_deployments.py")
    spec = importlib.util.spec_from_file_location(f"_planner_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module._real_only(module._current_views()["v_decisions"].strip()))


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_decisions")
    # Nullable ADD COLUMN: instant on both dialects.
    op.add_column("decisions", sa.Column("prefill_infeasible_num_req", sa.Float(), nullable=True))
    op.execute(f"CREATE VIEW v_decisions AS {_v_decisions()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_decisions")
    # Native DROP COLUMN (SQLite >= 3.35, PostgreSQL), as 0003 does.
    op.execute("ALTER TABLE decisions DROP COLUMN prefill_infeasible_num_req")
    op.execute(f"CREATE VIEW v_decisions AS {_v_decisions()}")

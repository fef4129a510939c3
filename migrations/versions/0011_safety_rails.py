"""Safety rails on the record: the per-cycle scale-down bound and the stale-data guard.

``decisions`` gains the numbers of both rails (planner_core/safety.py): the bound in percent,
each pool's floor and its target before the bound, whether it bit, the metrics' age and the
guard's limit; ``observations`` the time of the newest sample. All nullable: rows written
before this revision keep NULL, and a running older planner keeps writing while you upgrade.
``v_decisions`` selects ``dc.*``, which PostgreSQL expands when the view is created, so the
view is recreated (same body) to show the new columns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECISION_COLUMNS = (
    ("scale_down_max_percent", sa.Float()),
    ("prefill_scale_down_floor", sa.Integer()),
    ("decode_scale_down_floor", sa.Integer()),
    ("prefill_replicas_before_scale_down_limit", sa.Integer()),
    ("decode_replicas_before_scale_down_limit", sa.Integer()),
    ("scale_down_limited", sa.Boolean()),
    ("metrics_age_s", sa.Float()),
    ("max_metrics_age_s", sa.Float()),
)


def _v_decisions() -> str:
    """``v_decisions`` as revision 0007 left it (read from the revision that wrote it)."""
    path = Path(__file__).with_name("0007_simulated_deployments.py")
    spec = importlib.util.spec_from_file_location(f"_planner_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module._real_only(module._current_views()["v_decisions"].strip()))


def upgrade() -> None:
    body = _v_decisions()
    op.execute("DROP VIEW IF EXISTS v_decisions")
    for name, type_ in DECISION_COLUMNS:
        op.add_column("decisions", sa.Column(name, type_, nullable=True))
    op.add_column("observations", sa.Column("sample_time", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"CREATE VIEW v_decisions AS {body}")


def downgrade() -> None:
    body = _v_decisions()
    op.execute("DROP VIEW IF EXISTS v_decisions")
    op.execute("ALTER TABLE observations DROP COLUMN sample_time")
    for name, _ in reversed(DECISION_COLUMNS):
        op.execute(f"ALTER TABLE decisions DROP COLUMN {name}")
    op.execute(f"CREATE VIEW v_decisions AS {body}")

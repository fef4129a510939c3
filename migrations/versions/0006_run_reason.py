"""planner_runs.reason: why an operator re-planned by hand (trigger ``manual``).

A manual re-plan from the Prefect UI or the CLI requires a reason; it is stored with the run,
next to the Prefect flow run id, and ``v_runs`` shows it.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_V_RUNS = """
SELECT r.id AS run_id, r.deployment_id, d.name AS deployment, d.namespace, d.model,
       r.trigger, r.status, r.started_at, r.ended_at, r.error, r.flow_run_id, c.config{extra}
FROM planner_runs r
JOIN deployments d ON d.id = r.deployment_id
LEFT JOIN planner_configs c ON c.id = r.config_id
"""


def _replace_v_runs(extra: str) -> None:
    # No view reads v_runs; dropping and creating it is the one spelling both dialects accept.
    op.execute("DROP VIEW IF EXISTS v_runs")
    op.execute("CREATE VIEW v_runs AS " + _V_RUNS.format(extra=extra).strip())


def upgrade() -> None:
    # Nullable ADD COLUMN: instant on both dialects; scheduled runs keep NULL.
    op.add_column("planner_runs", sa.Column("reason", sa.Text(), nullable=True))
    _replace_v_runs(", r.reason")


def downgrade() -> None:
    _replace_v_runs("")
    op.execute("ALTER TABLE planner_runs DROP COLUMN reason")

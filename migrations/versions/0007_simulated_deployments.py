"""deployments.simulated: a replay's virtual cluster is marked and kept out of the reporting views.

`sla-planner replay` runs the production planning cycle and writes to the same store, so with
``PLANNER_DB_URL`` set its simulated, trace-dated cycles landed among the production ones and
were summed into ``v_gpu_hours_daily`` and ``v_sla_misses``. The views are recreated with the
same columns over real deployments only; the simulated rows stay in the tables (and `sla-planner
history --include-simulated` shows them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every view joins ``deployments d`` with an inner join; the filter goes on that join.
_DEPLOYMENT_JOIN = re.compile(r"JOIN deployments d ON d\.id = (\w+\.deployment_id)")


def _revision_module(filename: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"_planner_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _current_views() -> dict[str, str]:
    """The view bodies as revision 0006 left them (read from the revisions that wrote them, not
    copied): 0002's four views, ``v_runs`` with 0006's ``reason`` column."""
    views: dict[str, str] = _revision_module("0002_views.py")._views()
    views["v_runs"] = _revision_module("0006_run_reason.py")._V_RUNS.format(extra=", r.reason")
    return views


def _real_only(body: str) -> str:
    filtered, n = _DEPLOYMENT_JOIN.subn(r"JOIN deployments d ON d.id = \1 AND NOT d.simulated", body)
    if n != 1:
        raise RuntimeError(f"expected one join on deployments in a view body, found {n}")
    return filtered


def _drop_views(names: Sequence[str]) -> None:
    for name in reversed(list(names)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    views = _current_views()
    _drop_views(list(views))
    # Constant default: an instant ADD COLUMN on both dialects; every existing row is real.
    op.add_column("deployments", sa.Column("simulated", sa.Boolean(), server_default=sa.false(), nullable=False))
    for name, body in views.items():
        op.execute(f"CREATE VIEW {name} AS {_real_only(body.strip())}")


def downgrade() -> None:
    views = _current_views()
    _drop_views(list(views))
    op.execute("ALTER TABLE deployments DROP COLUMN simulated")
    for name, body in views.items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")

"""scaling_requests: the virtual connector's requests to an outside system and their acknowledgements.

Each decision the virtual connector hands over is one row: pending until the outside system
acknowledges it, a newer decision supersedes it, or SCALING_MAX_WAIT_TIME passes
(planner_core/store/scaling_requests.py). A new table: rows already stored are untouched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types spelled as in planner_core/store/models.py (frozen here: a migration must not import models).
ID = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scaling_requests",
        sa.Column("id", ID, nullable=False),
        sa.Column("deployment_id", ID, nullable=False),
        sa.Column("decision_id", ID, nullable=True),
        sa.Column("target_prefill", sa.Integer(), nullable=True),
        sa.Column("target_decode", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        sa.Column("running_prefill", sa.Integer(), nullable=True),
        sa.Column("running_decode", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_scaling_requests_decision_id_decisions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_scaling_requests_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scaling_requests")),
    )
    op.create_index(op.f("ix_scaling_requests_decision_id"), "scaling_requests", ["decision_id"], unique=False)
    op.create_index(
        "ix_scaling_requests_deployment_requested", "scaling_requests", ["deployment_id", "requested_at"], unique=False
    )
    op.create_index(
        "ix_scaling_requests_deployment_status", "scaling_requests", ["deployment_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_scaling_requests_deployment_status", table_name="scaling_requests")
    op.drop_index("ix_scaling_requests_deployment_requested", table_name="scaling_requests")
    op.drop_index(op.f("ix_scaling_requests_decision_id"), table_name="scaling_requests")
    op.drop_table("scaling_requests")

"""Reporting views: v_runs, v_decisions, v_gpu_hours_daily, v_sla_misses.

Bodies are per dialect where SQLite and PostgreSQL differ (date arithmetic and JSON access);
everything else is plain SQL both accept (window functions need SQLite >= 3.28).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Per-dialect fragments.
_SQL = {
    "sqlite": {
        "day": "date({col})",
        "hours": "((julianday({end}) - julianday({start})) * 24.0)",
        "cfg_num": "CAST(json_extract({cfg}, '$.{key}') AS REAL)",
    },
    "postgresql": {
        "day": "CAST(({col} AT TIME ZONE 'UTC') AS date)",
        "hours": "(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)",
        "cfg_num": "CAST(({cfg} ->> '{key}') AS double precision)",
    },
}


def _frag(name: str, **kw: str) -> str:
    dialect = op.get_bind().dialect.name
    return _SQL.get(dialect, _SQL["postgresql"])[name].format(**kw)


def _views() -> dict[str, str]:
    hours = _frag("hours", start="o.window_start", end="o.window_end")
    p_gpu = (
        "COALESCE(dc.prefill_engine_num_gpu, "
        + _frag("cfg_num", cfg="c.config", key="prefill_engine_num_gpu")
        + ", 1)"
    )
    d_gpu = (
        "COALESCE(dc.decode_engine_num_gpu, "
        + _frag("cfg_num", cfg="c.config", key="decode_engine_num_gpu")
        + ", 1)"
    )
    ttft_sla = "COALESCE(dc.ttft_sla_ms, " + _frag("cfg_num", cfg="c.config", key="ttft_ms") + ")"
    itl_sla = "COALESCE(dc.itl_sla_ms, " + _frag("cfg_num", cfg="c.config", key="itl_ms") + ")"
    day = _frag("day", col="o.window_start")
    return {
        "v_runs": """
SELECT r.id AS run_id, r.deployment_id, d.name AS deployment, d.namespace, d.model,
       r.trigger, r.status, r.started_at, r.ended_at, r.error, r.flow_run_id, c.config
FROM planner_runs r
JOIN deployments d ON d.id = r.deployment_id
LEFT JOIN planner_configs c ON c.id = r.config_id
""",
        "v_decisions": """
SELECT dc.id AS decision_id, d.name AS deployment, d.namespace, d.model,
       r.trigger, r.status AS run_status, r.started_at AS run_started_at,
       o.window_start, o.window_end, o.quality AS observed_quality,
       o.num_req AS observed_num_req, o.isl AS observed_isl, o.osl AS observed_osl,
       o.ttft_ms AS observed_ttft_ms, o.itl_ms AS observed_itl_ms,
       o.prefill_replicas AS current_prefill, o.decode_replicas AS current_decode,
       a.id AS action_id, a.connector AS action_connector, a.outcome AS action_outcome,
       a.target_prefill AS action_target_prefill, a.target_decode AS action_target_decode,
       a.requested_at AS action_requested_at, a.acknowledged_at AS action_acknowledged_at,
       a.error AS action_error,
       dc.*
FROM decisions dc
JOIN planner_runs r ON r.id = dc.run_id
JOIN deployments d ON d.id = dc.deployment_id
LEFT JOIN observations o ON o.run_id = dc.run_id
LEFT JOIN scaling_actions a ON a.decision_id = dc.id
""",
        "v_gpu_hours_daily": f"""
SELECT {day} AS day, o.deployment_id, d.name AS deployment, d.model, r.trigger,
       SUM(COALESCE(o.prefill_replicas, 0) * {p_gpu} * {hours}) AS prefill_gpu_hours,
       SUM(COALESCE(o.decode_replicas, 0) * {d_gpu} * {hours}) AS decode_gpu_hours,
       SUM((COALESCE(o.prefill_replicas, 0) * {p_gpu} + COALESCE(o.decode_replicas, 0) * {d_gpu})
           * {hours}) AS gpu_hours,
       COUNT(*) AS cycles
FROM observations o
JOIN planner_runs r ON r.id = o.run_id
JOIN deployments d ON d.id = o.deployment_id
LEFT JOIN planner_configs c ON c.id = r.config_id
LEFT JOIN decisions dc ON dc.run_id = o.run_id
GROUP BY {day}, o.deployment_id, d.name, d.model, r.trigger
""",
        "v_sla_misses": f"""
WITH obs AS (
    SELECT o.id, o.run_id, o.deployment_id, o.window_start, o.window_end, o.num_req, o.ttft_ms,
           o.itl_ms, o.prefill_replicas, o.decode_replicas,
           LAG(o.prefill_replicas) OVER w AS prev_prefill_replicas,
           LAG(o.decode_replicas) OVER w AS prev_decode_replicas
    FROM observations o
    WINDOW w AS (PARTITION BY o.deployment_id ORDER BY o.window_end)
), j AS (
    SELECT obs.*, r.trigger, {ttft_sla} AS ttft_sla_ms, {itl_sla} AS itl_sla_ms
    FROM obs
    JOIN planner_runs r ON r.id = obs.run_id
    LEFT JOIN planner_configs c ON c.id = r.config_id
    LEFT JOIN decisions dc ON dc.run_id = obs.run_id
)
SELECT j.id AS observation_id, j.run_id, j.deployment_id, d.name AS deployment, d.model, j.trigger,
       j.window_start, j.window_end, j.num_req,
       j.ttft_ms, j.ttft_sla_ms, CASE WHEN j.ttft_ms > j.ttft_sla_ms THEN 1 ELSE 0 END AS ttft_miss,
       j.itl_ms, j.itl_sla_ms, CASE WHEN j.itl_ms > j.itl_sla_ms THEN 1 ELSE 0 END AS itl_miss,
       j.prefill_replicas, j.decode_replicas, j.prev_prefill_replicas, j.prev_decode_replicas,
       CASE WHEN j.prefill_replicas < j.prev_prefill_replicas
              OR j.decode_replicas < j.prev_decode_replicas THEN 1 ELSE 0 END AS after_scale_down
FROM j
JOIN deployments d ON d.id = j.deployment_id
WHERE j.ttft_ms > j.ttft_sla_ms OR j.itl_ms > j.itl_sla_ms
""",
    }


def upgrade() -> None:
    for name, body in _views().items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")


def downgrade() -> None:
    for name in reversed(list(_views())):
        op.execute(f"DROP VIEW IF EXISTS {name}")

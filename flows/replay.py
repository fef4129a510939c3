"""Replays as flows, for what-ifs from the Prefect UI; the reports are attached as artifacts.

``replay``: the closed-loop replay of a trace on the simulated cluster (``sla-planner replay``).
``replay_history``: what a policy or predictor would have done on the stored observations of a
past window of a real deployment (:mod:`planner_core.sim.history`).
"""

from __future__ import annotations

import base64
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from planner_core.commands.replay import DEFAULT_LOAD_SCALE, REPLAY_DEFAULTS
from planner_core.config import BUNDLED_TRACE, PlannerConfig
from planner_core.runtime import load_profile_cached, merged_config
from planner_core.sim.replay import POLICIES, ReplayResult, compute_oracle, load_workload, run_policy
from planner_core.store import Store
from tasks.artifacts import artifact_key


class ReplayWorkload(BaseModel):
    """The trace to replay and how."""

    model_config = ConfigDict(extra="forbid")

    trace: str | None = Field(None, description="Azure CSV, Mooncake JSONL or ServeGen curve; empty = bundled Azure")
    policies: list[str] = Field(["default", "dynamo", "static", "oracle"], description=", ".join(POLICIES))
    load_scale: float | None = Field(
        None, gt=0, description="multiply the arrival rate; empty = 10 for the bundled trace"
    )
    duration_s: float | None = Field(None, gt=0, description="replay only the first seconds")
    startup_s: float = Field(60.0, ge=0, description="seconds before a new worker is ready")
    seed: int = 0


def _replay_config(settings: PlannerConfig | None) -> PlannerConfig:
    given = settings.model_dump(include=settings.model_fields_set) if settings is not None else {}
    return merged_config(None, **{**REPLAY_DEFAULTS, **given})


@task(name="replay-policy", task_run_name="replay {policy}", cache_policy=NO_CACHE, persist_result=False)
def replay_policy(workload: Any, config: PlannerConfig, policy: str, oracle: Any, startup_s: float) -> ReplayResult:
    return run_policy(
        workload,
        config,
        policy,
        startup_s=startup_s,
        oracle_plan=oracle,
        profile=load_profile_cached(config),
    )


def _png_markdown(report_dir: Path) -> str:
    parts = []
    for name in ("load", "replicas", "latency"):
        png = report_dir / f"{name}.png"
        if png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"### {name.title()}\n\n![{name}](data:image/png;base64,{data})\n")
    return "\n".join(parts)


@flow(name="replay", persist_result=False)
def replay(
    workload: ReplayWorkload = ReplayWorkload.model_validate({}),  # noqa: B008 - pydantic model default for the UI form
    settings: PlannerConfig | None = None,
    report_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Replay a trace through the production planning cycle on the simulated cluster, under
    each policy, and attach the comparison table and the plots."""
    from planner_core.sim.report import format_table, write_report

    unknown = [p for p in workload.policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"policies: unknown {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    config = _replay_config(settings)
    trace = Path(workload.trace) if workload.trace else BUNDLED_TRACE
    load_scale = workload.load_scale or (DEFAULT_LOAD_SCALE if workload.trace is None else 1.0)
    # load scaling's copies arrive within one adjustment interval, as in `sla-planner replay`
    requests = load_workload(
        trace,
        load_scale=load_scale,
        seed=workload.seed,
        duration_s=workload.duration_s,
        copy_jitter_s=float(config.adjustment_interval_s),
    )
    oracle = compute_oracle(requests, load_profile_cached(config), config)
    results = [replay_policy(requests, config, p, oracle, workload.startup_s) for p in workload.policies]
    title = f"Replay of {requests.name} (load scale {load_scale:g})"
    out_dir = Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="sla-planner-replay-"))
    index = write_report(results, out_dir, title, config.ttft_ms, config.itl_ms)
    summaries = [{k: v for k, v in r.summary().items() if not isinstance(v, dict)} for r in results]
    create_table_artifact(summaries, key=artifact_key("replay", requests.name), description=title)
    create_markdown_artifact(
        f"## {title}\n\n```\n{format_table(results)}\n```\n\nReport: `{index}`\n\n{_png_markdown(out_dir)}",
        key=artifact_key("replay-report", requests.name),
        description=title,
    )
    get_run_logger().info("%s\n%s", title, format_table(results))
    return summaries


@flow(name="replay-history", persist_result=False)
def replay_history(
    deployment: str,
    since: datetime,
    until: datetime,
    settings: PlannerConfig | None = None,
    db_url: str | None = None,
) -> dict[str, Any]:
    """What ``settings`` (policy, predictor, SLA, budget) would have decided on ``deployment``'s
    stored observations between ``since`` and ``until``, next to what was decided."""
    from planner_core.predictors import LoadPredictor
    from planner_core.sim.history import replay_history as run_history

    config = merged_config(settings)
    with Store(db_url) as store:
        report = run_history(
            store,
            deployment,
            since,
            until,
            config,
            load_profile_cached(config),
            LoadPredictor(config, synchronous_refit=True),
        )
    summary = report.summary()
    create_table_artifact(
        report.rows,
        key=artifact_key("replay-history", deployment),
        description="\n".join(
            f"- **{k}**: {v:.3f}" if isinstance(v, float) else f"- **{k}**: {v}" for k, v in summary.items()
        ),
    )
    get_run_logger().info("replay of %s stored cycles: %s", report.intervals, summary)
    return summary

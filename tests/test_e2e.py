"""End to end on real servers: Prefect server and process worker, Prometheus, PostgreSQL, and the
simulated cluster with its Dynamo frontend exporter acting as the virtual connector's outside system.

The test deploys a copy of ``prefect.yaml`` whose schedules run every few seconds
(``prefect --no-prompt deploy --all``), lets the worker run at least three scheduled ``plan``
cycles, triggers one manual ``replan`` through the Prefect API (``run_deployment``), then stops
the worker and checks that the simulator runs exactly the replicas the last recorded decision
asked for and that every cycle is in SQL.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from planner_core.stack import Stack, StackError, free_port, prefect_cli, start_prefect_server, start_prometheus
from planner_core.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.prometheus, pytest.mark.prefect]

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = "llama-8b-disagg"
NAMESPACE = "dynamo"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
INTERVAL_S = 12
SPEED = 5.0  # simulated seconds per wall second
SCHEDULED_CYCLES = 3
# Wall time the worker gets for the scheduled cycles: each flow run is a new process (about
# 10 s on an idle 2-core machine, 30 s on a loaded one) and runs of one deployment never overlap.
CYCLES_BUDGET_S = 300.0


def _e2e_prefect_file(workdir: Path) -> Path:
    """prefect.yaml with one plan deployment and replan, every schedule at INTERVAL_S."""
    from flows.serve import load_prefect_file, with_interval

    doc = with_interval(load_prefect_file(REPO / "prefect.yaml"), INTERVAL_S)
    doc["deployments"] = [d for d in doc["deployments"] if d["name"] in (DEPLOYMENT, "replan")]
    doc["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    path = workdir / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    with Store(url) as store, store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def _sim_replicas(status_file: Path) -> dict[str, Any]:
    return json.loads(status_file.read_text())


def test_scheduled_and_manual_cycles_on_real_servers(tmp_path, postgres_url):
    started = time.monotonic()
    python = sys.executable
    sla_planner = [python, "-m", "planner_core.cli"]
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PLANNER_DB_URL": postgres_url}
    with Stack(tmp_path / "stack") as stack:
        stack.env.update(env)
        stack.run("db-upgrade", [*sla_planner, "db", "upgrade", "--db-url", postgres_url])

        # The simulated cluster: frontend exporter on a free port, acknowledging the virtual connector's requests.
        sim_port, status_file = free_port(), tmp_path / "sim-status.json"
        stack.start(
            "sim-cluster",
            [
                *sla_planner, "sim-cluster", "--deployment", DEPLOYMENT, "--namespace", NAMESPACE,
                "--model-name", MODEL, "--db-url", postgres_url, "--port", str(sim_port),
                "--speed", str(SPEED), "--status-file", str(status_file),
            ],
        )  # fmt: skip
        stack.wait_http("sim-cluster", f"http://127.0.0.1:{sim_port}/metrics", 120)
        prometheus = start_prometheus(stack, [f"127.0.0.1:{sim_port}"], 1.0, {"dynamo_namespace": NAMESPACE})

        api = start_prefect_server(stack, ui=False)
        stack.run("work-pool", [*prefect_cli(), "work-pool", "create", "sla-planner", "--type", "process"])
        prefect_file = _e2e_prefect_file(tmp_path)
        stack.run(
            "deploy", [*prefect_cli(), "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)], cwd=REPO
        )
        stack.start(
            "worker",
            [*prefect_cli(), "worker", "start", "--pool", "sla-planner", "--type", "process"],
            env={
                "PLANNER_ENVIRONMENT": "virtual",
                "PROMETHEUS_ENDPOINT": prometheus,
                "PLANNER_LOAD_PREDICTOR": "constant",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            },
        )

        worker_started = time.monotonic()

        def scheduled_done() -> int:
            return len(
                _rows(postgres_url, "SELECT id FROM planner_runs WHERE trigger = 'schedule' AND status <> 'running'")
            )

        while scheduled_done() < SCHEDULED_CYCLES:
            if time.monotonic() - worker_started > CYCLES_BUDGET_S:
                raise StackError(f"{scheduled_done()} scheduled cycles in {CYCLES_BUDGET_S:.0f} s; see {stack.workdir}")
            time.sleep(2)

        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api}):
            flow_run = run_deployment(
                "replan/replan",
                parameters={
                    "deployment": DEPLOYMENT,
                    "reason": "e2e: pin decode to 3",
                    "overrides": {"decode_replicas": 3},
                },
                timeout=180,
            )
        assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state

        stack.stop_one("worker")
        # Let the simulator acknowledge the last request.
        deadline = time.monotonic() + 20
        while _rows(postgres_url, "SELECT id FROM scaling_requests WHERE status = 'pending'"):
            assert time.monotonic() < deadline, "the simulator never acknowledged the last scaling request"
            time.sleep(0.5)

        runs = _rows(postgres_url, "SELECT * FROM v_runs ORDER BY run_id")
        manual = [r for r in runs if r["trigger"] == "manual"]
        assert len(manual) == 1 and manual[0]["reason"] == "e2e: pin decode to 3"
        assert manual[0]["flow_run_id"] == str(flow_run.id)
        scheduled = [r for r in runs if r["trigger"] == "schedule"]
        assert len(scheduled) >= SCHEDULED_CYCLES
        assert all(r["status"] in ("ok", "held", "skipped_locked") for r in scheduled), scheduled
        observed = _rows(
            postgres_url,
            "SELECT o.quality, o.num_req FROM observations o JOIN planner_runs r ON r.id = o.run_id "
            "WHERE r.trigger = 'schedule'",
        )
        assert any(o["quality"] == "ok" and (o["num_req"] or 0) > 0 for o in observed), observed

        last = _rows(
            postgres_url,
            "SELECT d.prefill_replicas, d.decode_replicas FROM decisions d "
            "JOIN scaling_actions a ON a.decision_id = d.id WHERE NOT d.dry_run ORDER BY d.id DESC LIMIT 1",
        )[0]
        sim = _sim_replicas(status_file)
        assert (sim["prefill"], sim["decode"]) == (last["prefill_replicas"], last["decode_replicas"])
        assert sim["decode"] == 3 or scheduled[-1]["run_id"] > manual[0]["run_id"]
    print(f"e2e wall time {time.monotonic() - started:.0f} s")

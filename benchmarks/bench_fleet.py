"""Fleet load: N planned deployments served from one process at 60 s intervals (issue 16, part 3).

What a user runs, on real servers: a Prefect server, ``sla-planner serve`` serving a project file
(one process; Prefect starts a flow-run process per run), a real Prometheus scraping one simulated
Dynamo frontend per deployment (5 s scrape, Dynamo's), PostgreSQL as the store, and the virtual
connector, whose scaling requests the simulated clusters acknowledge. Two layouts:

* ``fleet`` (default): one ``plan-fleet`` deployment (flows/fleet.py) that plans all N deployments
  per run, each cycle a task in a thread;
* ``per-deployment``: one ``plan`` deployment per model, as prefect.yaml lists them (a flow-run
  process per deployment per interval).

Every cycle must finish within its interval: a run's end minus its scheduled start is at most the
interval. Prints the cycle times (p50/p99 of each deployment's cycle, from ``planner_runs``), the
flow runs' lateness and duration, CPU and memory of the serving process tree (and of the
servers), and one JSON line. Long (``--minutes``), outside CI; run it on a quiet machine:

    .venv/bin/python benchmarks/bench_fleet.py                       # 50 deployments, 6 minutes
    .venv/bin/python benchmarks/bench_fleet.py --layout per-deployment --minutes 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner_core.stack import Stack, free_port, start_prefect_server  # noqa: E402

PG_ADMIN_URL = os.environ.get("PLANNER_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


# -- the simulated frontends (a child process) -------------------------------------------------------


def run_frontends(count: int, db_url: str, ports_file: Path, load_scale: float) -> int:
    """``count`` simulated clusters, each serving its Dynamo frontend's /metrics on its own port and
    carrying out its deployment's virtual scaling requests."""
    from planner_core.config import BUNDLED_PROFILE_DIR, BUNDLED_TRACE
    from planner_core.metrics.exporter import SimFrontendServer
    from planner_core.profiles import load_profile
    from planner_core.records import Replicas
    from planner_core.sim.cluster import ClusterSimulator
    from planner_core.sim.replay import load_workload
    from planner_core.store import Store, StoreError
    from planner_core.store.scaling_requests import acknowledge, pending_request

    profile = load_profile(BUNDLED_PROFILE_DIR)
    workload = load_workload(BUNDLED_TRACE, load_scale=load_scale)
    servers = []
    for _ in range(count):
        sim = ClusterSimulator(
            profile, workload.arrival_s, workload.isl, workload.osl, initial=Replicas(1, 1), startup_s=30.0
        )
        servers.append(SimFrontendServer(sim, port=0, speed=1.0).start())
    ports_file.write_text(json.dumps([s.port for s in servers]))
    with Store(db_url) as store:
        while True:
            for i, server in enumerate(servers):
                name = member_name(i)
                try:
                    request = pending_request(store, f"{name}/{name}")
                except StoreError:  # not planned yet
                    continue
                if request is not None:
                    server.set_targets(request.targets)
                    with contextlib.suppress(StoreError):  # superseded meanwhile
                        acknowledge(store, f"{name}/{name}", request.id, by="bench-fleet")
            time.sleep(2.0)


def member_name(i: int) -> str:
    return f"fleet-{i:02d}"


# -- measuring a process tree ------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float, float, int] | None:
    """(process group, own CPU s, reaped children's CPU s, RSS bytes) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    pgrp = int(fields[2])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return pgrp, own, children, int(fields[21]) * PAGE


class GroupSampler:
    """CPU seconds and RSS of every process of some process groups, sampled every second."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.cpu_s: dict[str, float] = dict.fromkeys(groups, 0.0)
        self.peak_rss: dict[str, int] = dict.fromkeys(groups, 0)
        self._seen: dict[int, tuple[str, float]] = {}
        self._leader_children: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> GroupSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        by_group = {pgid: name for name, pgid in self.groups.items()}
        rss: dict[str, int] = dict.fromkeys(self.groups, 0)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            stat = _stat(int(entry))
            if stat is None or stat[0] not in by_group:
                continue
            name = by_group[stat[0]]
            self._seen[int(entry)] = (name, stat[1])
            rss[name] += stat[3]
            if int(entry) == stat[0]:  # the leader: its reaped children's CPU
                self._leader_children[name] = stat[2]
        for name in self.groups:
            self.peak_rss[name] = max(self.peak_rss[name], rss[name])
            own = sum(cpu for pid, (n, cpu) in self._seen.items() if n == name)
            self.cpu_s[name] = own + self._leader_children[name]

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()


# -- the benchmark -----------------------------------------------------------------------------------


def project_file(path: Path, layout: str, count: int, interval_s: int) -> None:
    settings = {
        "environment": "virtual",
        "load_predictor": "kalman",
        "adjustment_interval_s": interval_s,
        "max_gpu_budget": 16,
    }
    members = [{"name": member_name(i), "settings": {**settings, "namespace": member_name(i)}} for i in range(count)]
    if layout == "fleet":
        deployments = [
            {
                "name": "fleet",
                "entrypoint": "flows/fleet.py:plan_fleet",
                "schedules": [{"interval": interval_s}],
                "parameters": {"deployments": members},
                "concurrency_limit": 1,
            }
        ]
    else:
        deployments = [
            {
                "name": m["name"],
                "entrypoint": "flows/plan.py:plan",
                "schedules": [{"interval": interval_s}],
                "parameters": {"deployment": m["name"], "settings": m["settings"]},
                "concurrency_limit": 1,
            }
            for m in members
        ]
    path.write_text(yaml.safe_dump({"name": "bench-fleet", "deployments": deployments}, sort_keys=False))


def prometheus(stack: Stack, ports: list[int], scrape_s: float) -> str:
    import shutil

    port = free_port()
    jobs = "".join(
        f"      - targets: ['127.0.0.1:{p}']\n        labels:\n          dynamo_namespace: {member_name(i)!r}\n"
        for i, p in enumerate(ports)
    )
    config = stack.workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_s:g}s\nscrape_configs:\n  - job_name: dynamo-frontend\n"
        f"    static_configs:\n{jobs}"
    )
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus is not installed: apt-get install prometheus")
    stack.start(
        "prometheus",
        [binary, f"--config.file={config}", f"--storage.tsdb.path={stack.workdir / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    stack.wait_http("prometheus", f"{url}/-/ready", 60)
    return url


def flow_runs(api: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs: list[Any] = []
        while page := client.read_flow_runs(limit=200, offset=len(runs)):
            runs += page
        return [r for r in runs if r.start_time is not None]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    db_name = f"planner_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    db_url = make_url(PG_ADMIN_URL).set(database=db_name).render_as_string(hide_password=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    python = sys.executable
    try:
        from planner_core.store import Store

        with Store(db_url, check_schema=False) as store:
            store.upgrade()
        with Stack(workdir) as stack:
            stack.env["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
            ports_file = workdir / "ports.json"
            frontends = stack.start(
                "frontends",
                [python, __file__, "frontends", "--count", str(args.deployments), "--db-url", db_url,
                 "--ports-file", str(ports_file), "--load-scale", str(args.load_scale)],
            )  # fmt: skip
            deadline = time.monotonic() + 300
            while not ports_file.exists():
                stack.check_alive()
                if time.monotonic() > deadline:
                    raise SystemExit("the simulated frontends did not start")
                time.sleep(0.5)
            ports = json.loads(ports_file.read_text())
            prom = prometheus(stack, ports, 5.0)
            api = start_prefect_server(stack, ui=False)
            prefect_file = workdir / "prefect.yaml"
            project_file(prefect_file, args.layout, args.deployments, args.interval_s)
            serving = stack.start(
                "serve",
                [python, "-m", "planner_core.cli", "serve", "--prefect-file", str(prefect_file)],
                env={"PLANNER_DB_URL": db_url, "PROMETHEUS_ENDPOINT": prom, "PLANNER_ENVIRONMENT": "virtual"},
                cwd=REPO,
            )
            servers = {"frontends": frontends.pid, "serve": serving.pid}
            servers.update({name: proc.pid for name, proc in stack.procs if name in ("prometheus", "prefect-server")})
            sampler = GroupSampler(servers).start()
            started = datetime.now(UTC)
            t0 = time.monotonic()
            print(f"serving {args.deployments} deployments ({args.layout}) for {args.minutes:g} min ...", flush=True)
            while time.monotonic() - t0 < args.minutes * 60:
                stack.check_alive()
                time.sleep(5)
            sampler.stop()
            wall_s = time.monotonic() - t0
            runs = flow_runs(api)
            stack.stop_one("serve")
        with Store(db_url) as store, store.engine.connect() as conn:
            cycles = list(
                conn.execute(
                    text(
                        "SELECT d.name, r.status, r.started_at, r.ended_at FROM planner_runs r "
                        "JOIN deployments d ON d.id = r.deployment_id WHERE r.started_at >= :t ORDER BY r.id"
                    ),
                    {"t": started},
                )
            )
            qualities: dict[Any, Any] = dict(
                conn.execute(
                    text(
                        "SELECT o.quality, count(*) FROM observations o JOIN planner_runs r ON r.id = o.run_id "
                        "WHERE r.started_at >= :t GROUP BY o.quality"
                    ),
                    {"t": started},
                ).all()
            )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    result = summarise(args, runs, cycles, sampler, wall_s, workdir)
    result["observation_quality"] = {str(k): int(v) for k, v in qualities.items()}
    return result


def summarise(args: argparse.Namespace, runs: list[Any], cycles: list[Any], sampler: GroupSampler, wall_s: float,
              workdir: Path) -> dict[str, Any]:  # fmt: skip
    interval = float(args.interval_s)
    done = [r for r in runs if r.end_time is not None]
    late_s = [(r.start_time - r.expected_start_time).total_seconds() for r in done if r.expected_start_time]
    run_s = [(r.end_time - r.start_time).total_seconds() for r in done]
    due_s = [(r.end_time - r.expected_start_time).total_seconds() for r in done if r.expected_start_time]
    finished = [c for c in cycles if c.ended_at is not None]
    cycle_s = [(c.ended_at - c.started_at).total_seconds() for c in finished]
    intervals = wall_s / interval
    expected_cycles = int(intervals) * args.deployments
    statuses: dict[str, int] = {}
    for c in cycles:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    result = {
        "layout": args.layout,
        "deployments": args.deployments,
        "interval_s": args.interval_s,
        "wall_s": round(wall_s, 1),
        "flow_runs_finished": len(done),
        "flow_runs_failed": sum(1 for r in done if r.state is not None and not r.state.is_completed()),
        "flow_run_late_p50_s": round(pct(late_s, 50), 2),
        "flow_run_late_p99_s": round(pct(late_s, 99), 2),
        "flow_run_s_p50": round(pct(run_s, 50), 2),
        "flow_run_s_p99": round(pct(run_s, 99), 2),
        "end_after_due_p99_s": round(pct(due_s, 99), 2),
        "runs_over_interval": sum(1 for d in due_s if d > interval),
        "cycles": len(cycles),
        "cycles_expected_about": expected_cycles,
        "cycle_statuses": statuses,
        "cycle_s_p50": round(pct(cycle_s, 50), 3),
        "cycle_s_p99": round(pct(cycle_s, 99), 3),
        "cycle_s_max": round(max(cycle_s), 3) if cycle_s else None,
        "cpu_cores_serve": round(sampler.cpu_s["serve"] / wall_s, 3),
        "cpu_cores_prefect_server": round(sampler.cpu_s["prefect-server"] / wall_s, 3),
        "cpu_cores_prometheus": round(sampler.cpu_s["prometheus"] / wall_s, 3),
        "cpu_cores_frontends": round(sampler.cpu_s["frontends"] / wall_s, 3),
        "peak_rss_mib_serve": round(sampler.peak_rss["serve"] / 2**20),
        "peak_rss_mib_prefect_server": round(sampler.peak_rss["prefect-server"] / 2**20),
        "peak_rss_mib_prometheus": round(sampler.peak_rss["prometheus"] / 2**20),
        "peak_rss_mib_frontends": round(sampler.peak_rss["frontends"] / 2**20),
        "load_before": args.load_before,
        "every_cycle_within_interval": bool(due_s) and max(due_s) <= interval and len(cycles) >= expected_cycles * 0.9,
        "workdir": str(workdir),
    }
    return result


def print_result(r: dict[str, Any]) -> None:
    print(f"\n{r['deployments']} deployments, layout {r['layout']}, every {r['interval_s']} s, {r['wall_s']:.0f} s")
    print(f"  flow runs finished {r['flow_runs_finished']} (failed {r['flow_runs_failed']}); late p50/p99 "
          f"{r['flow_run_late_p50_s']:.1f}/{r['flow_run_late_p99_s']:.1f} s; duration p50/p99 "
          f"{r['flow_run_s_p50']:.1f}/{r['flow_run_s_p99']:.1f} s; end after the scheduled start p99 "
          f"{r['end_after_due_p99_s']:.1f} s; runs past their interval {r['runs_over_interval']}")  # fmt: skip
    print(f"  cycles {r['cycles']} (about {r['cycles_expected_about']} due) {r['cycle_statuses']}; cycle time "
          f"p50 {r['cycle_s_p50'] * 1000:.0f} ms, p99 {r['cycle_s_p99'] * 1000:.0f} ms, max "
          f"{(r['cycle_s_max'] or 0) * 1000:.0f} ms")  # fmt: skip
    print(
        f"  CPU (cores): serve {r['cpu_cores_serve']}, Prefect server {r['cpu_cores_prefect_server']}, "
        f"Prometheus {r['cpu_cores_prometheus']}, simulated frontends {r['cpu_cores_frontends']}"
    )
    print(
        f"  peak RSS (MiB): serve {r['peak_rss_mib_serve']}, Prefect server {r['peak_rss_mib_prefect_server']}, "
        f"Prometheus {r['peak_rss_mib_prometheus']}, frontends {r['peak_rss_mib_frontends']}"
    )
    print(f"  every cycle within its interval: {r['every_cycle_within_interval']}")
    print(json.dumps({"bench": "fleet", **r}))


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["frontends"]:
        sub = argparse.ArgumentParser()
        sub.add_argument("--count", type=int, required=True)
        sub.add_argument("--db-url", required=True)
        sub.add_argument("--ports-file", type=Path, required=True)
        sub.add_argument("--load-scale", type=float, default=0.2)
        a = sub.parse_args(argv[1:])
        return run_frontends(a.count, a.db_url, a.ports_file, a.load_scale)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--layout", choices=("fleet", "per-deployment"), default="fleet")
    parser.add_argument("--load-scale", type=float, default=0.2, help="each frontend's trace load (x the bundled)")
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    if args.load_before > 3:
        print(f"warning: load average {args.load_before:.1f} (> 3): the numbers will be pessimistic", flush=True)
    print_result(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`sla-planner demo`: the whole stack on this machine, started with one command, stopped with Ctrl-C.

It starts, each as a child process on a free port and stopped by its process id:

1. the simulated cluster replaying the bundled trace in real time x ``--speed``, serving its Dynamo
   frontend metrics and carrying out the virtual connector's scaling requests (``sim-cluster``);
2. Prometheus scraping it every second;
3. a Prefect server with its UI;
4. ``sla-planner serve`` with the ``plan`` deployment ``llama-8b-disagg`` of ``prefect.yaml``
   (every ``--interval-s``), ``replan`` and ``refit``, reading Prometheus and scaling through
   the virtual connector, writing to SQLite.

Watch the decisions in the Prefect UI (Artifacts: ``decision-llama-8b-disagg``) and in SQL
(``sla-planner history --db-url ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

DEMO_DEPLOYMENT = "llama-8b-disagg"
DEMO_NAMESPACE = "dynamo"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the local demo stack (simulator, Prometheus, Prefect server, scheduled planner); Ctrl-C stops it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="logs and data (default ./.demo)")
    parser.add_argument("--db-url", default=None, help="audit database (default sqlite:///<workdir>/planner.db)")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per wall second (default 10)")
    parser.add_argument("--load-scale", type=float, default=1.0, help="multiply the trace's arrival rate")
    parser.add_argument("--interval-s", type=int, default=20, help="planning interval, wall seconds (default 20)")
    parser.add_argument(
        "--prefect-file", type=Path, default=Path("prefect.yaml"), help="project file to serve (default ./prefect.yaml)"
    )
    parser.add_argument("--duration-s", type=float, default=None, help="stop by itself after this many seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError
    from planner_core.stack import Stack, StackError, free_port, start_prefect_server, start_prometheus

    if not args.prefect_file.is_file():
        raise UsageError(f"--prefect-file: {args.prefect_file} not found; run from the repository root")
    if args.interval_s <= 0 or args.speed <= 0:
        raise UsageError("--interval-s and --speed must be positive")
    workdir = args.workdir.resolve()
    db_url = args.db_url or f"sqlite:///{workdir / 'planner.db'}"
    cli = [sys.executable, "-m", "planner_core.cli"]
    status_file = workdir / "sim-status.json"
    stack = Stack(workdir)
    stack.env["PLANNER_DB_URL"] = db_url
    try:
        print(f"starting the demo stack in {workdir} (logs: {workdir}/*.log)", flush=True)
        sim_port = free_port()
        stack.start(
            "sim-cluster",
            [
                *cli, "sim-cluster", "--deployment", DEMO_DEPLOYMENT, "--namespace", DEMO_NAMESPACE,
                "--db-url", db_url, "--port", str(sim_port), "--speed", str(args.speed),
                "--load-scale", str(args.load_scale), "--status-file", str(status_file),
            ],
        )  # fmt: skip
        stack.wait_http("sim-cluster", f"http://127.0.0.1:{sim_port}/metrics", 120)
        prometheus = start_prometheus(stack, [f"127.0.0.1:{sim_port}"], 1.0, {"dynamo_namespace": DEMO_NAMESPACE})
        api = start_prefect_server(stack)
        stack.start(
            "serve",
            [
                *cli, "serve", "--prefect-file", str(args.prefect_file.resolve()), "--interval-s", str(args.interval_s),
                "--only", DEMO_DEPLOYMENT, "--only", "replan", "--only", "refit",
            ],
            env={"PLANNER_ENVIRONMENT": "virtual", "PROMETHEUS_ENDPOINT": prometheus},
        )  # fmt: skip
        ui = api.removesuffix("/api")
        print(
            f"\n  Prefect UI      {ui}  (Artifacts -> decision-{DEMO_DEPLOYMENT})\n"
            f"  Prometheus      {prometheus}\n"
            f"  frontend        http://127.0.0.1:{sim_port}/metrics\n"
            f"  history         sla-planner history --db-url {db_url}\n"
            f"  re-plan         PREFECT_API_URL={api} prefect deployment run replan/replan "
            f"--param deployment={DEMO_DEPLOYMENT} --param reason='try it'\n\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        started = time.monotonic()
        last = None
        while args.duration_s is None or time.monotonic() - started < args.duration_s:
            stack.check_alive()
            if status_file.exists():
                status = json.loads(status_file.read_text())
                now = (status["prefill"], status["decode"])
                if now != last:
                    print(f"simulator runs prefill {now[0]}, decode {now[1]} (sim time {status['sim_time_s']:.0f} s)")
                    last = now
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except StackError as exc:
        print(f"sla-planner demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print("stopped every process of the demo stack")
    return 0

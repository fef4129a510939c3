"""`sla-planner sim-cluster`: the simulated cluster as the virtual connector's outside system.

One process runs the simulator in real time (or sped up), serves its Dynamo frontend metrics on
``/metrics`` for Prometheus to scrape, and acts as the environment the virtual connector scales:
it polls the deployment's pending scaling request in the SQL store, applies it to the simulated
cluster and acknowledges it with the replicas it now runs. The demo stack and the end-to-end
test run it; ``--status-file`` lets them read the replicas the simulator runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from planner_core.commands.db import add_db_url_argument

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim-cluster",
        help="run the simulated cluster: frontend metrics for Prometheus, scaled by the virtual connector",
        description=(
            "Replay a trace on the simulated cluster in real time (x --speed), serve its Dynamo frontend "
            "metrics, and carry out the virtual connector's scaling requests for --deployment. Ctrl-C stops it."
        ),
    )
    parser.add_argument("--deployment", required=True, help="planned deployment whose requests to carry out")
    parser.add_argument("--namespace", default="dynamo", help="its Dynamo namespace (default dynamo)")
    parser.add_argument("--model-name", default=DEFAULT_MODEL, help="model label of the exported metrics")
    add_db_url_argument(parser)
    parser.add_argument("--trace", type=Path, default=None, help="trace to replay (default: the bundled Azure trace)")
    parser.add_argument("--load-scale", type=float, default=1.0, help="multiply the trace's arrival rate")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    parser.add_argument("--port", type=int, default=0, help="port of /metrics (default: a free one, printed)")
    parser.add_argument("--startup-s", type=float, default=10.0, help="seconds before a new simulated worker is ready")
    parser.add_argument("--poll-s", type=float, default=0.5, help="how often to look for a pending scaling request")
    parser.add_argument("--status-file", type=Path, default=None, help="write the running replicas here (JSON)")
    parser.set_defaults(func=run)


def _write_status(path: Path | None, status: dict[str, Any]) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)  # readers never see half a file


def run(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError
    from planner_core.config import BUNDLED_PROFILE_DIR, BUNDLED_TRACE
    from planner_core.metrics.exporter import SimFrontendServer
    from planner_core.profiles import load_profile
    from planner_core.records import Replicas
    from planner_core.sim.cluster import ClusterSimulator
    from planner_core.sim.replay import load_workload
    from planner_core.store import Store, StoreError
    from planner_core.store.scaling_requests import acknowledge, pending_request

    if args.speed <= 0 or args.load_scale <= 0 or args.poll_s <= 0:
        raise UsageError("--speed, --load-scale and --poll-s must be positive numbers")
    workload = load_workload(args.trace or BUNDLED_TRACE, load_scale=args.load_scale)
    sim = ClusterSimulator(
        load_profile(BUNDLED_PROFILE_DIR),
        workload.arrival_s,
        workload.isl,
        workload.osl,
        initial=Replicas(1, 1),
        startup_s=args.startup_s,
    )
    server = SimFrontendServer(sim, model=args.model_name, port=args.port, speed=args.speed).start()
    print(f"sim-cluster: metrics on {server.url} (x{args.speed:g}), carrying out {args.namespace}/{args.deployment}")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deployment = f"{args.namespace}/{args.deployment}"
    acknowledged = 0
    try:
        with Store(args.db_url) as store:
            while not stop.is_set():
                try:
                    request = pending_request(store, deployment)
                except StoreError:  # the planner has not planned this deployment yet
                    request = None
                if request is not None:
                    server.set_targets(request.targets)
                    replicas = server.replicas()
                    running = Replicas(replicas["prefill"]["target"], replicas["decode"]["target"])
                    try:
                        acknowledge(store, deployment, request.id, running=running, by=f"sim-cluster:{os.getpid()}")
                        acknowledged += 1
                    except StoreError as exc:  # superseded meanwhile: the next poll takes the new one
                        print(f"sim-cluster: {exc}", file=sys.stderr)
                replicas = server.replicas()
                _write_status(
                    args.status_file,
                    {
                        "prefill": replicas["prefill"]["target"],
                        "decode": replicas["decode"]["target"],
                        "replicas": replicas,
                        "sim_time_s": server.sim_time_s,
                        "acknowledged": acknowledged,
                        "metrics_url": server.url,
                    },
                )
                stop.wait(args.poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0

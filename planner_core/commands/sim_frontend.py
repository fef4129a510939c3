"""`sla-planner sim-frontend`: a simulated Dynamo frontend serving /metrics in (sped-up) real time."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path
from typing import Any

from planner_core.config import BUNDLED_TRACE, add_config_arguments, config_from_args


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim-frontend",
        help="run a trace on the simulated cluster and serve Dynamo frontend metrics for Prometheus",
        description=(
            "Replays a trace through the cluster simulator at --speed simulated seconds per wall second "
            "and serves /metrics with the Dynamo frontend's metric names, types, labels and histogram "
            "buckets. Scrape it with a target label dynamo_namespace=<--namespace>."
        ),
    )
    parser.add_argument("--trace", type=Path, default=None, help="Azure CSV, Mooncake JSONL or ServeGen curve")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    parser.add_argument("--load-scale", type=float, default=1.0, help="multiply the arrival rate (shape kept)")
    parser.add_argument("--duration-s", type=float, default=None, help="replay only the first N seconds")
    parser.add_argument("--port", type=int, default=8000, help="port of /metrics (0 = a free one; default 8000)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--prefill", type=int, default=2, help="prefill replicas at the start (default 2)")
    parser.add_argument("--decode", type=int, default=2, help="decode replicas at the start (default 2)")
    parser.add_argument("--startup-s", type=float, default=60.0, help="seconds before a new worker is ready")
    parser.add_argument("--exit-after-s", type=float, default=None, help="stop after this many wall seconds")
    add_config_arguments(parser, only=("model_name", "namespace", "profile_results_dir"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError
    from planner_core.metrics.exporter import DEFAULT_MODEL, SimFrontendServer
    from planner_core.profiles import load_profile
    from planner_core.records import Replicas
    from planner_core.sim.cluster import ClusterSimulator
    from planner_core.sim.replay import load_workload

    if not args.speed > 0:
        raise UsageError("--speed must be a positive number of simulated seconds per wall second, for example 10")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.prefill < 0 or args.decode < 0:
        raise UsageError("--prefill and --decode must be >= 0")
    config = config_from_args(args)
    workload = load_workload(args.trace or BUNDLED_TRACE, load_scale=args.load_scale, duration_s=args.duration_s)
    sim = ClusterSimulator(
        load_profile(config.profile_dir()),
        workload.arrival_s,
        workload.isl,
        workload.osl,
        initial=Replicas(args.prefill, args.decode),
        startup_s=args.startup_s,
        max_num_seqs=config.max_num_seqs,
    )
    server = SimFrontendServer(
        sim, model=config.model_name or DEFAULT_MODEL, host=args.bind, port=args.port, speed=args.speed
    ).start()
    print(
        f"simulated Dynamo frontend: {len(workload):,} requests of {workload.name} over "
        f"{workload.duration_s / 60:.1f} min at x{args.speed:g}; metrics on {server.url} "
        f"(scrape with target label dynamo_namespace={config.namespace})",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    try:
        while not stop.wait(1.0):
            if args.exit_after_s is not None and time.monotonic() - started >= args.exit_after_s:
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0

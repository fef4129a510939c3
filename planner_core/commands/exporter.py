"""`sla-planner exporter`: serve the planner's own metrics from the store (for Prefect runs)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from planner_core.config import add_config_arguments, config_from_args

DEFAULT_EXPORTER_PORT = 9091


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "exporter",
        help="serve the planner's metrics (planner_*) read from the store, for scheduled runs",
        description=(
            "A long-lived /metrics endpoint for Prometheus: every scrape reads the store that the "
            "planning cycles (Prefect flow runs, run-once, replays) write, so short-lived runs still "
            "reach Prometheus. Port: --metric-reporting-prometheus-port / PLANNER_PROMETHEUS_PORT "
            f"(default {DEFAULT_EXPORTER_PORT} here); address: --metric-reporting-prometheus-address "
            "(default 127.0.0.1)."
        ),
    )
    parser.add_argument(
        "--db-url", default=None, help="store URL (default: env PLANNER_DB_URL or sqlite:///planner.db)"
    )
    parser.add_argument(
        "--backfill",
        default=None,
        metavar="FILE",
        help=(
            "instead of serving, write the stored history as OpenMetrics to FILE ('-' for stdout), for "
            "`promtool tsdb create-blocks-from openmetrics FILE DATA_DIR`"
        ),
    )
    parser.add_argument(
        "--since", default=None, help="with --backfill: only runs that ended after this (a duration such as 1d, or ISO)"
    )
    add_config_arguments(parser, only=("metric_reporting_prometheus_port", "metric_reporting_prometheus_address"))
    parser.set_defaults(func=run)


def backfill(args: argparse.Namespace) -> int:
    from planner_core.commands import UsageError
    from planner_core.commands.db import open_existing_store
    from planner_core.commands.history import since_arg
    from planner_core.metrics.backfill import write_openmetrics

    since = since_arg(args.since)
    store = open_existing_store(args.db_url)
    try:
        if args.backfill == "-":
            samples = write_openmetrics(store, sys.stdout, since)
        else:
            try:
                with open(args.backfill, "w", encoding="utf-8") as out:
                    samples = write_openmetrics(store, out, since)
            except OSError as exc:
                raise UsageError(f"--backfill: cannot write {args.backfill!r}: {exc.strerror or exc}") from None
    finally:
        store.close()
    print(
        f"wrote {samples} samples; load them with: promtool tsdb create-blocks-from openmetrics FILE DATA_DIR",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from planner_core.metrics.store_exporter import serve_store
    from planner_core.store import Store

    if args.backfill is not None:
        return backfill(args)
    if args.since is not None:
        from planner_core.commands import UsageError

        raise UsageError("--since applies to --backfill only")
    config = config_from_args(args)
    port = config.metric_reporting_prometheus_port or DEFAULT_EXPORTER_PORT
    store = Store(args.db_url)
    server, bound = serve_store(store, port, config.metric_reporting_prometheus_address)
    print(
        f"serving planner metrics from {store!r} on http://{config.metric_reporting_prometheus_address}:{bound}/metrics",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        store.close()
    print("exporter stopped", file=sys.stderr)
    return 0

"""`sla-planner run-once` and `sla-planner run`: the planning cycle without Prefect.

``run-once`` plans one interval (cron jobs, debugging). ``run`` is the planner as one
long-lived process, the way Dynamo deploys its own: a cycle at every adjustment-interval
boundary, the predictor kept in memory between cycles, and the planner's metrics served on
``--metric-reporting-prometheus-port`` when it is non-zero. Both run the cycle the ``plan`` flow
runs: same flags, same store, same lock, so a ``run`` process and a Prefect deployment for one
deployment never apply two decisions for one interval.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from planner_core.commands.db import add_db_url_argument
from planner_core.config import add_config_arguments, config_from_args
from planner_core.policies import policy_for


def _add_cycle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deployment", required=True, help="planned deployment (DynamoGraphDeployment) name")
    add_db_url_argument(parser)
    parser.add_argument("--json", action="store_true", help="print each cycle's summary as JSON")
    add_config_arguments(parser)


def register(subparsers: Any) -> None:
    once: argparse.ArgumentParser = subparsers.add_parser(
        "run-once",
        help="run one planning cycle for one deployment now (no Prefect)",
        description=(
            "Observe the last interval, forecast, size, scale through the connector and record "
            "everything, once. Example: sla-planner run-once --deployment llama-8b-disagg "
            "--environment kubernetes --adjustment-interval 60"
        ),
    )
    _add_cycle_arguments(once)
    once.add_argument("--window-end", default=None, help="end of the observed interval, ISO 8601 (default now)")
    once.add_argument("--reason", default=None, help="record the cycle as a manual re-plan with this reason")
    once.set_defaults(func=run)

    loop: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="plan one deployment every adjustment interval in this process, until stopped (no Prefect)",
        description=(
            "The planner as one long-lived process: a cycle at every --adjustment-interval boundary, "
            "the planner's metrics on --metric-reporting-prometheus-port (when non-zero). Stops after "
            "the current cycle on SIGTERM or Ctrl-C. Example: sla-planner run --deployment "
            "llama-8b-disagg --environment kubernetes --metric-reporting-prometheus-port 9085"
        ),
    )
    _add_cycle_arguments(loop)
    loop.add_argument("--cycles", type=int, default=None, help="stop after this many cycles (default: never)")
    loop.set_defaults(func=run_loop)


def _parse_time(text: str) -> datetime:
    from planner_core.cli import UsageError

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--window-end: {text!r} is not an ISO 8601 time, for example 2026-03-01T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _report(args: argparse.Namespace, result: Any) -> None:
    from planner_core import summary

    if args.json:
        print(json.dumps(summary.as_dict(args.deployment, result)), flush=True)
    else:
        print(summary.headline(args.deployment, result), flush=True)


def run(args: argparse.Namespace) -> int:
    from planner_core.runtime import open_cycle
    from planner_core.store import Store

    config = config_from_args(args)
    window_end = _parse_time(args.window_end) if args.window_end else None
    trigger = "manual" if args.reason else "schedule"
    with Store(args.db_url) as store:
        cycle = open_cycle(config, args.deployment, store, trigger=trigger, reason=args.reason)
        result = cycle.run(window_end=window_end)
    _report(args, result)
    if result.status == "error":
        print(f"sla-planner run-once: the cycle failed: {result.error}", file=sys.stderr)
        return 1
    return 0


def seconds_to_boundary(now_s: float, interval_s: float) -> float:
    """Seconds from ``now_s`` (epoch seconds) to the next multiple of ``interval_s``; a full
    interval when ``now_s`` is on a boundary, so that each cycle observes a whole interval."""
    return interval_s - (now_s % interval_s)


def wait_checking_queue(cycle: Any, interval_s: float, check_s: float, stop: threading.Event) -> bool:
    """Wait for the next interval boundary, running the queue check (planner_core.surge) every
    ``check_s`` seconds meanwhile (0 = no checks). True when ``stop`` was set."""
    while True:
        left = seconds_to_boundary(cycle.clock.now().timestamp(), interval_s)
        if check_s <= 0 or left <= check_s:
            return stop.wait(left)
        if stop.wait(check_s):
            return True
        checked = cycle.check_queue()
        if checked is not None and checked.decision is not None:
            print(f"sla-planner run: {checked.decision.reason}", flush=True)


def run_loop(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError

    if args.cycles is not None and args.cycles < 1:
        raise UsageError("--cycles must be 1 or more (leave it out to run until stopped)")
    config = config_from_args(args)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _loop(args, config, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _loop(args: argparse.Namespace, config: Any, stop: threading.Event) -> int:
    from planner_core.metrics.planner_metrics import publish, serve_if_configured
    from planner_core.runtime import open_cycle
    from planner_core.store import Store

    port = serve_if_configured(config)
    if port is not None:
        print(
            f"sla-planner run: planner metrics on http://{config.metric_reporting_prometheus_address}:{port}/metrics",
            flush=True,
        )
    failed = done = 0
    with Store(args.db_url) as store:
        # One cycle object for the process: its predictor and memory stay warm between cycles,
        # and ARIMA order searches run in this process's background pool (no refit flow here).
        cycle = open_cycle(config, args.deployment, store, deferred_refit=False)
        check_s = policy_for(config.policy).queue_check_interval_s(config)
        while not stop.is_set():
            if wait_checking_queue(cycle, config.adjustment_interval_s, check_s, stop):
                break
            started = time.perf_counter()
            result = cycle.run()
            publish(result, config, args.deployment, time.perf_counter() - started)
            _report(args, result)
            failed += result.status == "error"
            done += 1
            if args.cycles is not None and done >= args.cycles:
                break
    print(f"sla-planner run: stopped after {done} cycles ({failed} failed)", file=sys.stderr, flush=True)
    return 0

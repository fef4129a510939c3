"""`sla-planner run-once`: one planning cycle of one deployment, without Prefect.

The same cycle the ``plan`` flow runs (same flags, same store, same lock), for cron jobs,
debugging and users without a Prefect server.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from planner_core.commands.db import add_db_url_argument
from planner_core.config import add_config_arguments, config_from_args


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run-once",
        help="run one planning cycle for one deployment now (no Prefect)",
        description=(
            "Observe the last interval, forecast, size, scale through the connector and record "
            "everything, once. Example: sla-planner run-once --deployment llama-8b-disagg "
            "--environment kubernetes --adjustment-interval 60"
        ),
    )
    parser.add_argument("--deployment", required=True, help="planned deployment (DynamoGraphDeployment) name")
    add_db_url_argument(parser)
    parser.add_argument("--window-end", default=None, help="end of the observed interval, ISO 8601 (default now)")
    parser.add_argument("--reason", default=None, help="record the cycle as a manual re-plan with this reason")
    parser.add_argument("--json", action="store_true", help="print the cycle's summary as JSON")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def _parse_time(text: str) -> datetime:
    from planner_core.cli import UsageError

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--window-end: {text!r} is not an ISO 8601 time, for example 2026-03-01T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from planner_core import summary
    from planner_core.runtime import open_cycle
    from planner_core.store import Store

    config = config_from_args(args)
    window_end = _parse_time(args.window_end) if args.window_end else None
    trigger = "manual" if args.reason else "schedule"
    with Store(args.db_url) as store:
        cycle = open_cycle(config, args.deployment, store, trigger=trigger, reason=args.reason)
        result = cycle.run(window_end=window_end)
    if args.json:
        print(json.dumps(summary.as_dict(args.deployment, result)))
    else:
        print(summary.headline(args.deployment, result))
    if result.status == "error":
        print(f"sla-planner run-once: the cycle failed: {result.error}", file=sys.stderr)
        return 1
    return 0

"""`sla-planner history`: recent planning cycles from the audit database."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from planner_core.commands.db import add_db_url_argument, open_existing_store
from planner_core.store.history import parse_since, to_csv, to_json_lines, to_table


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history",
        help="recent planning cycles: observed and predicted load, decided and applied replicas",
        description=(
            "Print recent planning cycles, newest first. Example: "
            "sla-planner history --deployment llama-disagg --since 6h --limit 20"
        ),
    )
    add_db_url_argument(parser)
    parser.add_argument("--deployment", default=None, help="deployment name or namespace/name (default all)")
    parser.add_argument("--since", default=None, help="only cycles after this: a duration (1d, 6h) or ISO time")
    parser.add_argument("--limit", type=int, default=50, help="at most this many cycles (default 50)")
    parser.add_argument(
        "--include-simulated", action="store_true", help="also show the cycles of replays (simulated deployments)"
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per line")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    parser.set_defaults(func=run)


def since_arg(text: str | None) -> datetime | None:
    """``--since`` (a duration back from now, or an ISO time) as a time; a bad value is a usage error."""
    from planner_core.commands import UsageError

    try:
        return parse_since(text) if text else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from planner_core.commands import UsageError

    if args.limit <= 0:
        raise UsageError(f"--limit: must be a positive number of cycles, got {args.limit}; for example 50")
    since = since_arg(args.since)
    store = open_existing_store(args.db_url)
    try:
        rows = store.latest_cycles(args.deployment, since, args.limit, include_simulated=args.include_simulated)
    finally:
        store.close()
    if args.json:
        sys.stdout.write(to_json_lines(rows))
    elif args.csv:
        sys.stdout.write(to_csv(rows))
    elif not rows:
        print("no planning cycles recorded" + (f" for {args.deployment}" if args.deployment else ""))
    else:
        sys.stdout.write(to_table(rows))
    return 0

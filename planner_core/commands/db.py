"""`sla-planner db upgrade|current|prune`: manage the audit database."""

from __future__ import annotations

import argparse
import json
from typing import Any

from planner_core.store import DEFAULT_URL, ENV_URL, Store, StoreError
from planner_core.store.history import parse_duration


def add_db_url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db-url",
        default=None,
        help=f"SQLAlchemy URL of the audit database (env {ENV_URL}; default {DEFAULT_URL}); "
        "postgresql://user@host/db uses psycopg 3",
    )


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="manage the audit database (migrations, retention)",
        description="Create or upgrade the audit database schema, show its revision, prune old cycles.",
    )
    sub = parser.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    sub.required = True

    up = sub.add_parser("upgrade", help="apply all migrations (alembic upgrade head)")
    add_db_url_argument(up)
    up.add_argument("--revision", default="head", help="target revision (default head)")
    up.set_defaults(func=run_upgrade)

    cur = sub.add_parser("current", help="print the schema revision of the database and of this planner")
    add_db_url_argument(cur)
    cur.set_defaults(func=run_current)

    prune = sub.add_parser(
        "prune", help="delete cycles older than a duration (predictor state and deployments are kept)"
    )
    add_db_url_argument(prune)
    prune.add_argument("--older-than", required=True, help="age of the cycles to delete, e.g. 90d, 12h")
    prune.set_defaults(func=run_prune)


def _fail(args: argparse.Namespace, exc: Exception) -> int:
    import sys

    print(f"sla-planner db {args.db_command}: error: {exc}", file=sys.stderr)
    return 1


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        store = Store(args.db_url, check_schema=False)
        before = store.current_revision()
        store.upgrade(args.revision)
        after = store.current_revision()
        store.close()
    except StoreError as exc:
        return _fail(args, exc)
    print(f"{store!r}: schema {before or 'empty'} -> {after}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from planner_core.store import migrate

    try:
        store = Store(args.db_url, check_schema=False)
        current = store.current_revision()
        store.close()
    except StoreError as exc:
        return _fail(args, exc)
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `sla-planner db upgrade`"
    print(f"{store!r}: revision {current or 'none'} (this planner: {head}; {state})")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    try:
        older_than = parse_duration(args.older_than)
    except ValueError as exc:
        from planner_core.cli import UsageError

        raise UsageError(str(exc)) from None
    try:
        store = Store(args.db_url)
        counts = store.prune(older_than)
        store.close()
    except StoreError as exc:
        return _fail(args, exc)
    print(json.dumps({"older_than_s": older_than.total_seconds(), "deleted": counts}, sort_keys=True))
    return 0

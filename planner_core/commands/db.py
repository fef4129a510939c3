"""`sla-planner db upgrade|current|prune`: manage the audit database."""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from planner_core.store import DEFAULT_URL, ENV_URL, Store, StoreError, resolve_url
from planner_core.store.history import parse_duration

# Pruning this recent history (``--older-than 0`` deletes everything) needs ``--yes``.
PRUNE_CONFIRM_BELOW = timedelta(days=1)


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
    prune.add_argument(
        "--yes", action="store_true", help=f"confirm a prune of cycles younger than {PRUNE_CONFIRM_BELOW.days} day(s)"
    )
    prune.set_defaults(func=run_prune)


def open_existing_store(db_url: str | None, *, check_schema: bool = True) -> Store:
    """The store at ``db_url``, which must exist: a read-only command (``history``, ``db current``)
    must not leave a new, empty SQLite file behind when the path is mistyped."""
    url = resolve_url(db_url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return Store(url, check_schema=check_schema)  # Store names the bad URL
    path = parsed.database
    is_file = parsed.get_backend_name() == "sqlite" and path not in (None, "", ":memory:")
    if is_file and not str(path).startswith("file:") and not Path(str(path)).exists():
        origin = "--db-url" if db_url else (f"{ENV_URL}" if os.environ.get(ENV_URL) else f"the default {DEFAULT_URL}")
        raise StoreError(
            f"--db-url: no database at {str(path)!r} (from {origin}); check the path, "
            f"or create it with `sla-planner db upgrade --db-url {url if url.isprintable() else repr(url)}`"
        )
    return Store(url, check_schema=check_schema)


def run_upgrade(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from planner_core.commands import UsageError
    from planner_core.store import migrate

    # Resolved before the database is touched, so a typo leaves no trace in it.
    script = migrate.ScriptDirectory.from_config(migrate.alembic_config())
    try:
        script.get_revisions(args.revision)
    except CommandError as exc:
        known = ", ".join(s.revision for s in reversed(list(script.walk_revisions())))
        raise UsageError(f"--revision: {exc}; give one of {known} or head") from None
    store = Store(args.db_url, check_schema=False)
    try:
        before = store.current_revision()
        store.upgrade(args.revision)
        after = store.current_revision()
    finally:
        store.close()
    print(f"{store!r}: schema {before or 'empty'} -> {after}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from planner_core.store import migrate

    store = open_existing_store(args.db_url, check_schema=False)
    try:
        current = store.current_revision()
    finally:
        store.close()
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `sla-planner db upgrade`"
    print(f"{store!r}: revision {current or 'none'} (this planner: {head}; {state})")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from planner_core.commands import UsageError

    try:
        older_than = parse_duration(args.older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    if older_than < PRUNE_CONFIRM_BELOW and not args.yes:
        raise UsageError(
            f"--older-than: {args.older_than} deletes every cycle of the last "
            f"{PRUNE_CONFIRM_BELOW.days} day(s) as well; pass --yes to confirm"
        )
    store = open_existing_store(args.db_url)
    try:
        counts = store.prune(older_than)
    finally:
        store.close()
    print(json.dumps({"older_than_s": older_than.total_seconds(), "deleted": counts}, sort_keys=True))
    return 0

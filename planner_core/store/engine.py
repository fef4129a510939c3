"""Opening a database: URL resolution and engines with the right per-dialect settings."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from planner_core.redaction import redact_url
from planner_core.store.errors import StoreError

DEFAULT_URL = "sqlite:///planner.db"
ENV_URL = "PLANNER_DB_URL"
# How long a statement waits for a lock another session holds before it fails (SQLite's
# busy_timeout, PostgreSQL's lock_timeout): a transient lock is waited out, one held for good
# fails the cycle (recorded, nothing scaled) instead of hanging it.
LOCK_WAIT_MS = 30_000


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$PLANNER_DB_URL``, else ``sqlite:///planner.db``; ``postgresql://`` uses psycopg 3."""
    raw = url or os.environ.get(ENV_URL) or DEFAULT_URL
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def create_owner_only(path: str) -> None:
    """Create an empty SQLite file readable and writable by its owner only (``0600``), before
    SQLite opens it: the audit trail is the planner's alone. SQLite gives the ``-wal`` and
    ``-shm`` files the database file's mode. An existing file keeps the mode its owner chose."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists, or cannot be created: SQLite reports the latter itself
        return
    os.close(fd)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine with WAL, a busy timeout and foreign keys on SQLite; pre-ping and a lock timeout on
    PostgreSQL (:data:`LOCK_WAIT_MS` on both)."""
    resolved = resolve_url(url)
    try:
        parsed = make_url(resolved)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise _bad_url(resolved, exc) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        connect_args = {"timeout": LOCK_WAIT_MS / 1000}
        try:
            engine = create_engine(resolved, connect_args=connect_args, **kwargs)
        except ArgumentError as exc:  # sqlite://relative (two slashes)
            raise _bad_url(resolved, exc) from None
        database = parsed.database
        if database not in (None, "", ":memory:") and not str(database).startswith("file:"):

            @event.listens_for(engine, "do_connect")
            def _create_owner_only(*_: Any) -> None:
                create_owner_only(str(database))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if parsed.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if backend == "postgresql":
        try:
            for host in (parsed.host or "").split(","):
                host.encode("idna")  # a name the resolver would fail on, at every connect
            engine = create_engine(resolved, pool_pre_ping=True, **kwargs)
        except (ArgumentError, ValueError, TypeError) as exc:
            raise _bad_url(resolved, exc) from None

        @event.listens_for(engine, "connect")
        def _pg_lock_timeout(dbapi_conn: Any, _record: Any) -> None:
            # A session default; the cycle lock's own wait (SET LOCAL) overrides it.
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET lock_timeout = {int(LOCK_WAIT_MS)}")
            dbapi_conn.commit()

        return engine
    raise StoreError(
        f"--db-url / {ENV_URL}: unsupported database {backend!r} in {redact_url(resolved)!r}; "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def _bad_url(url: str, exc: Exception) -> StoreError:
    reason = " ".join(str(exc).split())  # SQLAlchemy's own text spans lines
    return StoreError(
        f"--db-url / {ENV_URL}: bad database URL {redact_url(url)!r} ({reason}); "
        "give sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )

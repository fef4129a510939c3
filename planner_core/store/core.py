"""What every part of the store shares: the engines, the schema check, deployments and the cycle lock.

:class:`StoreCore` opens the database; the purpose-specific parts (:mod:`.writes`,
:mod:`.warm_start`, :mod:`.reporting`, :mod:`.retention`) build on it and
:class:`~planner_core.store.repository.Store` puts them together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Float, cast, func, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from planner_core.store import migrate
from planner_core.store.engine import make_engine, resolve_url
from planner_core.store.errors import StoreError
from planner_core.store.lock import CL, CycleLock, ensure_lock_row
from planner_core.store.rows import ACT, CFG, DEC, DEP, OBS, PRED, PST, RUN, aware

# What a planner database holds (a half-created one is waited for, anything else refused).
_PLANNER_TABLES = {t.name for t in (DEP, CFG, RUN, OBS, PRED, DEC, ACT, PST, CL)} | {"alembic_version"}


@dataclass
class RunInfo:
    """What the writes of a run need to know of it (cached per run id)."""

    deployment_id: int
    started_at: datetime


class StoreCore:
    """Engines, schema and the deployments table, shared by the store's parts."""

    def __init__(
        self,
        url: str | None = None,
        *,
        check_schema: bool = True,
        lock_ttl_s: float = 600.0,
        async_commit: bool = True,
        echo: bool = False,
    ) -> None:
        self.url = resolve_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self.dialect = self.engine.dialect.name
        # PostgreSQL: one-statement writes run in autocommit (no BEGIN / COMMIT round trips). The
        # durable ones (decisions, action requests) share the main pool, whose sessions keep
        # ``synchronous_commit = on``; the others use a second small pool whose sessions start
        # with ``synchronous_commit = off`` (see :meth:`_single`).
        self._autocommit_engine: Engine | None = None
        self._async_engine: Engine | None = None
        if self.dialect == "postgresql":
            self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self._async_engine = (
                make_engine(
                    self.url,
                    echo=echo,
                    isolation_level="AUTOCOMMIT",
                    pool_size=2,
                    connect_args={"options": "-c synchronous_commit=off"},
                )
                if async_commit
                else self._autocommit_engine
            )
        self.lock_ttl_s = lock_ttl_s
        self.async_commit = async_commit
        self._locks: dict[int, CycleLock] = {}  # held cycle locks, by deployment id
        self._runs: dict[int, RunInfo] = {}  # writes: runs this store began or wrote to
        self._decisions: dict[int, int] = {}  # writes: decision id -> deployment id, until its action
        self._config_ids: dict[str, int] = {}  # writes: config sha256 -> planner_configs id
        self._sql_cache: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}  # reporting: compiled SQL
        if check_schema:
            self._check_schema()

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._async_engine is not None and self._async_engine is not self._autocommit_engine:
            self._async_engine.dispose()
        self.engine.dispose()

    def __enter__(self) -> StoreCore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema -------------------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> None:
        """``alembic upgrade head`` (or to ``revision``)."""
        migrate.upgrade(self.engine, revision)

    def downgrade(self, revision: str) -> None:
        migrate.downgrade(self.engine, revision)

    def current_revision(self) -> str | None:
        return migrate.current_revision(self.engine)

    def _check_schema(self) -> None:
        head = migrate.head_revision()
        try:
            current = self.current_revision()
        except OperationalError as exc:
            raise StoreError(f"cannot open the planner database {self!r}: {exc.orig}") from None
        if current == head:
            return
        hint = f"run `sla-planner db upgrade --db-url {self.engine.url.render_as_string(hide_password=True)}`"
        if current is None:
            tables = inspect(self.engine).get_table_names()
            if self.dialect == "sqlite" and not tables:
                try:
                    self.upgrade()
                except OperationalError:  # another process created it at the same moment
                    if not self._wait_for_revision(head):
                        raise
                return
            # pysqlite runs DDL outside a transaction: another process creating the schema shows
            # its tables before its revision. Planner tables only: wait for it to finish.
            if self.dialect == "sqlite" and set(tables) <= _PLANNER_TABLES and self._wait_for_revision(head):
                return
            what = "has other tables but no planner schema" if tables else "has no planner schema yet"
            raise StoreError(f"the database {self!r} {what}; {hint}")
        known = {s.revision for s in migrate.ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()}
        if current not in known:
            raise StoreError(
                f"the database {self!r} is at schema revision {current}, newer than this planner "
                f"knows (head {head}); upgrade sla-planner"
            )
        raise StoreError(f"the database {self!r} is at schema revision {current}, this planner needs {head}; {hint}")

    def _wait_for_revision(self, head: str, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.current_revision() == head:
                return True
            time.sleep(0.05)
        return False

    # -- deployments and the cycle lock ---------------------------------------------------------
    def ensure_deployment(
        self,
        name: str,
        namespace: str,
        model: str | None,
        backend: str,
        mode: str,
        created_at: datetime | None = None,
        *,
        simulated: bool = False,
    ) -> int:
        """The id of deployment ``namespace/name``, created (or its model/backend/mode updated).

        ``simulated`` marks a replay's virtual cluster (set when the row is created): the
        reporting views and :meth:`latest_cycles` leave such deployments out."""
        backend, mode = str(getattr(backend, "value", backend)), str(getattr(mode, "value", mode))
        with self.engine.begin() as conn:
            row = conn.execute(
                select(DEP.c.id, DEP.c.model, DEP.c.backend, DEP.c.mode).where(
                    DEP.c.namespace == namespace, DEP.c.name == name
                )
            ).first()
            if row is not None:
                if (row.model, row.backend, row.mode) != (model, backend, mode):
                    conn.execute(update(DEP).where(DEP.c.id == row.id).values(model=model, backend=backend, mode=mode))
                return int(row.id)
            ins = (
                self._insert(DEP)
                .values(
                    name=name,
                    namespace=namespace,
                    model=model,
                    backend=backend,
                    mode=mode,
                    created_at=aware(created_at or datetime.now(UTC), "created_at"),
                    simulated=simulated,
                )
                .on_conflict_do_nothing()
            )
            conn.execute(ins)
            dep_id = conn.execute(select(DEP.c.id).where(DEP.c.namespace == namespace, DEP.c.name == name)).scalar_one()
            ensure_lock_row(conn, dep_id)
            return int(dep_id)

    def deployment_id(self, name: str, namespace: str | None = None) -> int | None:
        q = select(DEP.c.id).where(DEP.c.name == name)
        if namespace is not None:
            q = q.where(DEP.c.namespace == namespace)
        with self.engine.connect() as conn:
            ids = conn.execute(q).scalars().all()
        if len(ids) > 1:
            raise StoreError(f"deployment name {name!r} exists in several namespaces; give namespace/name")
        return int(ids[0]) if ids else None

    @contextmanager
    def cycle_lock(self, deployment_id: int, wait_s: float = 0.0, ttl_s: float | None = None) -> Iterator[CycleLock]:
        """Hold the deployment's cycle lock; raises :class:`LockBusy` if still held after ``wait_s``."""
        if deployment_id in self._locks:
            raise StoreError(f"this store already holds the cycle lock of deployment {deployment_id}")
        lock = CycleLock(self.engine, deployment_id, wait_s=wait_s, ttl_s=ttl_s or self.lock_ttl_s)
        lock.acquire()
        self._locks[deployment_id] = lock
        try:
            yield lock
        finally:
            self._locks.pop(deployment_id, None)
            lock.release()

    # -- connections ----------------------------------------------------------------------------
    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[Connection]:
        """A transaction. ``durable=False`` on PostgreSQL commits without waiting for the WAL flush
        (``synchronous_commit = off``): the row is safe from a planner crash at once and from a
        server crash as soon as any later durable commit (the next decision or action request)
        flushes the WAL, which it does in order. Decisions and action requests are always durable."""
        with self.engine.begin() as conn:
            if not durable and self.async_commit and self.dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield conn

    @contextmanager
    def _single(self, durable: bool = True) -> Iterator[Connection]:
        """A connection for writes that are ONE statement each (plus reads before it).

        On PostgreSQL the statement commits by itself (autocommit): one round trip instead of
        BEGIN, the statement and COMMIT. ``durable=True`` runs on the main pool
        (``synchronous_commit = on``: the commit has reached the disk when the call returns);
        ``durable=False`` on the pool whose sessions run with ``synchronous_commit = off`` (same
        guarantees as :meth:`_tx` with ``durable=False``). On SQLite it is :meth:`_tx`."""
        engine = self._autocommit_engine if durable else self._async_engine
        if engine is None:
            with self._tx(durable) as conn:
                yield conn
            return
        with engine.connect() as conn:
            yield conn

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT (for ``on_conflict_do_*``)."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def _epoch(self, column: Any) -> Any:
        """``column`` (a timestamp) as epoch seconds, in SQL."""
        if self.dialect == "sqlite":
            return (func.julianday(column) - 2440587.5) * 86400.0
        return cast(func.extract("epoch", column), Float)  # EXTRACT gives numeric on PostgreSQL 14+

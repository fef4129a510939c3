"""One planning cycle per deployment at a time, enforced by the database.

* **PostgreSQL**: a row lock. A dedicated connection opens a transaction and takes
  ``SELECT ... FROM deployments WHERE id = :id FOR NO KEY UPDATE`` (``NOWAIT``, or bounded by
  ``lock_timeout`` when waiting). The lock lives exactly as long as that connection's
  transaction, so a crashed or killed planner releases it when its connection drops. ``NO KEY``
  keeps the lock compatible with the ``FOR KEY SHARE`` that foreign-key checks take when the
  holder inserts its run, observation and decision rows.
* **SQLite** (no row locks): a lease in ``cycle_locks``, taken by one atomic conditional
  ``UPDATE`` (free, or expired) and released by clearing it. A lease left behind by a crashed
  planner is taken over when it expires (``ttl_s``) or at once when its holder was a process on
  this host that no longer exists.

In both cases ``cycle_locks`` says who holds the lock (``host:pid``), since when and which run,
so the loser's :class:`LockBusy` names them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from planner_core.store.errors import LockBusy, StoreError
from planner_core.store.models import CycleLockRow

CL: Table = CycleLockRow.__table__  # type: ignore[assignment]
log = logging.getLogger("sla_planner.store.lock")
POLL_S = 0.05


def this_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str | None) -> bool:
    """True when ``holder`` (``host:pid``) names a process of this host that has exited."""
    if not holder or ":" not in holder:
        return False
    host, _, pid_text = holder.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def ensure_lock_row(conn: Connection, deployment_id: int) -> None:
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conn.execute(insert(CL).values(deployment_id=deployment_id).on_conflict_do_nothing())


class CycleLock:
    """The lock of one deployment; use :meth:`planner_core.store.Store.cycle_lock`."""

    def __init__(self, engine: Engine, deployment_id: int, *, wait_s: float = 0.0, ttl_s: float = 600.0):
        self.engine = engine
        self.deployment_id = deployment_id
        self.wait_s = max(0.0, float(wait_s))
        self.ttl_s = float(ttl_s)
        self.token = uuid.uuid4().hex
        self.holder = this_holder()
        self.acquired_at: datetime | None = None
        self.run_id: int | None = None
        self._pg_conn: Connection | None = None
        self.is_postgres = engine.dialect.name == "postgresql"

    # -- acquire / release ----------------------------------------------------------------------
    def acquire(self) -> CycleLock:
        if self.is_postgres:
            self._acquire_pg()
        else:
            self._acquire_lease()
        return self

    def release(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(CL)
                    .where(CL.c.deployment_id == self.deployment_id, CL.c.token == self.token)
                    .values(token=None, holder=None, run_id=None, acquired_at=None, expires_at=None)
                )
        finally:
            if self._pg_conn is not None:
                try:
                    self._pg_conn.rollback()
                except DBAPIError as exc:
                    # The session died under us (killed, failover): PostgreSQL released the
                    # row lock with it. The cycle's own records are committed; nothing to undo.
                    log.warning(
                        "cycle lock of deployment %s: its session was gone at release (%s)",
                        self.deployment_id,
                        exc.orig,
                    )
                finally:
                    self._pg_conn.close()
                    self._pg_conn = None

    def __enter__(self) -> CycleLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def bind_run_values(self, run_id: int, now: datetime) -> dict[str, Any]:
        """Column values recording ``run_id`` (and renewing a lease) in ``cycle_locks``."""
        self.run_id = run_id
        values: dict[str, Any] = {"run_id": run_id}
        if not self.is_postgres:
            values["expires_at"] = now + timedelta(seconds=self.ttl_s)
        return values

    def holder_info(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(CL).where(CL.c.deployment_id == self.deployment_id)).first()
        if row is None:
            return {}
        return {
            "holder": row.holder,
            "run_id": row.run_id,
            "since": row.acquired_at,
            "expires_at": row.expires_at,
            "token": row.token,
        }

    # -- PostgreSQL: row lock ---------------------------------------------------------------------
    def _acquire_pg(self) -> None:
        conn = self.engine.connect()
        try:
            conn.begin()
            if self.wait_s > 0:
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(self.wait_s * 1000)}ms'"))
                sql = "SELECT id FROM deployments WHERE id = :d FOR NO KEY UPDATE"
            else:
                sql = "SELECT id FROM deployments WHERE id = :d FOR NO KEY UPDATE NOWAIT"
            found = conn.execute(text(sql), {"d": self.deployment_id}).first()
            if found is None:
                raise StoreError(f"unknown deployment id {self.deployment_id}")
        except OperationalError as exc:
            conn.rollback()
            conn.close()
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                info = self.holder_info()
                raise LockBusy(
                    self.deployment_id,
                    holder=info.get("holder"),
                    run_id=info.get("run_id"),
                    since=info.get("since"),
                    waited_s=self.wait_s,
                ) from None
            raise
        except BaseException:
            conn.rollback()
            conn.close()
            raise
        self._pg_conn = conn
        now = datetime.now(UTC)
        with self.engine.begin() as wconn:
            ensure_lock_row(wconn, self.deployment_id)
            wconn.execute(
                update(CL)
                .where(CL.c.deployment_id == self.deployment_id)
                .values(token=self.token, holder=self.holder, run_id=None, acquired_at=now, expires_at=None)
            )
        self.acquired_at = now

    # -- SQLite: lease ------------------------------------------------------------------------------
    def _acquire_lease(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            info = self._try_lease()
            if info is None:
                return
            if time.monotonic() >= deadline:
                raise LockBusy(
                    self.deployment_id,
                    holder=info.get("holder"),
                    run_id=info.get("run_id"),
                    since=info.get("since"),
                    waited_s=self.wait_s,
                )
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _try_lease(self) -> dict[str, Any] | None:
        """Take the lease; None on success, else what is known about the holder."""
        now = datetime.now(UTC)
        values = {
            "token": self.token,
            "holder": self.holder,
            "run_id": None,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.ttl_s),
        }
        with self.engine.begin() as conn:
            ensure_lock_row(conn, self.deployment_id)
            taken = conn.execute(
                update(CL)
                .where(
                    CL.c.deployment_id == self.deployment_id,
                    or_(CL.c.token.is_(None), CL.c.expires_at.is_(None), CL.c.expires_at < now),
                )
                .values(**values)
            ).rowcount
            if taken == 1:
                self.acquired_at = now
                return None
            row = conn.execute(select(CL).where(CL.c.deployment_id == self.deployment_id)).first()
            if row is not None and holder_is_dead(row.holder):
                stolen = conn.execute(
                    update(CL).where(CL.c.deployment_id == self.deployment_id, CL.c.token == row.token).values(**values)
                ).rowcount
                if stolen == 1:
                    self.acquired_at = now
                    return None
        if row is None:
            return {}
        return {"holder": row.holder, "run_id": row.run_id, "since": row.acquired_at}

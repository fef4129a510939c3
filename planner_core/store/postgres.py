"""PostgreSQL-only fast paths: the same answers as the portable queries, fewer round trips and
fewer Python objects. Each is called by the part of the store it speeds up, on PostgreSQL only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from planner_core.store.lock import CL
from planner_core.store.rows import OBS, aware

if TYPE_CHECKING:
    from planner_core.store.core import StoreCore


def begin_run(store: StoreCore, run_insert: Any, deployment_id: int) -> int:
    """The run insert and the lock's ``run_id`` in one autocommitted statement (two CTEs)."""
    run = run_insert.cte("run")
    q = select(run.c.id)
    lock = store._locks.get(deployment_id)
    if lock is not None:
        bind = (
            update(CL)
            .where(CL.c.deployment_id == deployment_id, CL.c.token == lock.token)
            .values(run_id=select(run.c.id).scalar_subquery())
            .returning(CL.c.deployment_id)
            .cte("bind")
        )
        q = q.add_cte(bind)
    with store._single(durable=False) as conn:
        run_id = int(conn.execute(q).scalar_one())
    if lock is not None:
        lock.bind_run_values(run_id, datetime.now(UTC))
    return run_id


def load_histories(
    conn: Connection, deployment_id: int, series: Sequence[str], since: datetime | None, limit: int | None
) -> dict[str, list[tuple[float, float | None]]]:
    """One row of arrays (``array_agg``) instead of one row per point.

    A week of 60-second history is ~10,000 points: as rows that is 10,000 driver tuples and
    10,000 SQLAlchemy ``Row`` objects, all GC-tracked containers, before the output is
    built; the arrays are decoded by psycopg's C loader and zipped into the output tuples,
    so the only containers allocated per point are the ones returned.

    The points are aggregated from an index-ordered subquery (one ``ORDER BY`` per aggregate
    would sort the week four times); all arrays come from the same pass over the same rows,
    so they stay aligned, and the order is checked here (sorted if it ever is not). The epoch
    is ``date_part`` (double precision; ``EXTRACT`` is numeric, much slower) rounded to
    milliseconds as the row path does."""
    t = (func.round(func.date_part("epoch", OBS.c.window_end) * 1000.0) / 1000.0).label("t")
    inner = select(t, *(OBS.c[name].label(name) for name in series)).where(OBS.c.deployment_id == deployment_id)
    if since is not None:
        inner = inner.where(OBS.c.window_end >= aware(since, "since"))
    if limit is not None:  # the latest ``limit`` points, returned oldest first
        latest = inner.order_by(OBS.c.window_end.desc()).limit(int(limit)).subquery("latest")
        ordered = select(*latest.c).order_by(latest.c.t)
    else:
        ordered = inner.order_by(OBS.c.window_end)
    sub = ordered.subquery("h")
    q = select(func.array_agg(sub.c.t), *(func.array_agg(sub.c[name]) for name in series))
    arrays = conn.execute(q).one()
    ts = arrays[0] or []
    out = {name: list(zip(ts, arrays[i] or [], strict=True)) for i, name in enumerate(series, start=1)}
    if not all(map(float.__le__, ts, islice(ts, 1, None))):
        for points in out.values():
            points.sort(key=itemgetter(0))
    return out


def latest_cycles_rows(
    store: StoreCore,
    conn: Connection,
    build_query: Callable[[dict[str, Any]], Any],
    params: dict[str, Any],
    started_at_index: int,
) -> list[tuple[Any, ...]]:
    """Run the cycle query on the driver's cursor in binary format.

    1,441 rows x 31 columns: binary floats, integers and timestamps are copied, not parsed
    from text, and the rows stay plain tuples (no ``Row`` objects, no per-value result
    processors). The SQL is compiled once per shape (filters present or not)."""
    shape = ("latest_cycles", "dep_ids" in params, "since" in params)
    cached = store._sql_cache.get(shape)
    if cached is None:
        compiled = build_query(params).compile(dialect=store.engine.dialect)
        cached = store._sql_cache[shape] = (compiled.string, dict(compiled.params))
    sql, constants = cached
    dbapi: Any = conn.connection.driver_connection
    # An OLTP read of a few thousand rows: parallel workers only add their start-up time, and
    # a long --since would push the cost over jit_above_cost (JIT compilation then takes
    # longer than the query). SET LOCAL-equivalents, undone by the rollback.
    with dbapi.cursor(binary=True) as cur:
        cur.execute("SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)")
        cur.execute(sql, {**constants, **params})
        rows = cur.fetchall()
    conn.rollback()
    i = started_at_index
    return [
        row if row[i] is None or row[i].tzinfo is UTC else (*row[:i], row[i].astimezone(UTC), *row[i + 1 :])
        for row in rows
    ]

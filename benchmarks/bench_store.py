"""Audit store benchmark: 30 days of 60-second cycles for 10 deployments, then time the hot paths.

    .venv/bin/python benchmarks/bench_store.py                    # SQLite and PostgreSQL, issue's numbers
    .venv/bin/python benchmarks/bench_store.py --backend sqlite --days 3 --deployments 2

The history is bulk-filled (executemany on SQLite, COPY on PostgreSQL: a few million rows over
runs, observations, predictions, decisions and actions), then timed through the real ``Store`` API:

* ``cycle_write`` - one whole cycle as the planning loop writes it: begin_run, observation,
  3 predictions, decision (committed), action requested (committed), action outcome, predictor
  state for 3 series, finish_run. Target p95 < 20 ms. ``cycle_write_locked`` adds taking and
  releasing the cycle lock.
* ``warm_start`` - 7 days of num_req/isl/osl history plus 3 predictor states. Target < 100 ms.
* ``history_day`` - ``latest_cycles`` for one deployment over the last day (1440 rows). Target < 50 ms.

Prints a table per backend and one JSON line at the end. PostgreSQL runs in a scratch database
``planner_bench_<random>`` on 127.0.0.1:5432 that is dropped afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from planner_core.config import BUNDLED_PROFILE_DIR, make_config
from planner_core.profiles import load_profile
from planner_core.records import Corrections, LoadForecast, Observation, Replicas, ScalingOutcome, SeriesForecast
from planner_core.sizing import size
from planner_core.store import SERIES, Store
from planner_core.store.rows import DECISION_COLUMNS, decision_values

PG_ADMIN_URL = os.environ.get("PLANNER_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGETS_MS = {"cycle_write_p95": 20.0, "warm_start_p95": 100.0, "history_day_p95": 50.0}

RUN_COLS = ("id", "deployment_id", "trigger", "status", "started_at", "ended_at", "error", "config_id", "flow_run_id")
OBS_COLS = ("id", "run_id", "deployment_id", "window_start", "window_end", "num_req", "ttft_ms", "itl_ms", "isl",
            "osl", "request_duration_s", "prefill_replicas", "decode_replicas", "quality", "error")
PRED_COLS = ("id", "run_id", "series", "predictor", "value", "upper", "quantile", "horizon")
DEC_COLS = ("id", "run_id", "deployment_id", "decided_at", "dry_run", *DECISION_COLUMNS)
ACT_COLS = ("id", "decision_id", "deployment_id", "connector", "target_prefill", "target_decode", "requested_at",
            "acknowledged_at", "outcome", "error")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(pct(ms, 0.95), 3),
            "max_ms": round(max(ms), 3), "n": len(ms)}


class Filler:
    """Synthetic but plausible history, generated per day and bulk-inserted."""

    def __init__(self, store: Store, deployments: int, days: int, interval_s: int, end: datetime):
        self.store = store
        self.n_dep = deployments
        self.interval = timedelta(seconds=interval_s)
        self.cycles_per_dep = int(days * 86400 / interval_s)
        self.start = end - self.cycles_per_dep * self.interval
        self.config = make_config(max_gpu_budget=32, adjustment_interval_s=interval_s)
        profile = load_profile(BUNDLED_PROFILE_DIR)
        # a handful of real decisions, reused as templates (numbers differ per load level)
        self.templates = []
        for level in (600.0, 1200.0, 2400.0, 4800.0):
            dec = size(LoadForecast(level, 3000.0, 150.0), profile, self.config, Corrections(1.0, 1.0))
            vals = decision_values(dec, 0, 0, end, False)
            self.templates.append((dec, tuple(self._sql(vals[c]) for c in DECISION_COLUMNS)))
        self.dep_ids: list[int] = []
        self.rows = 0

    def _sql(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value)
        return value

    def _ts(self, value: datetime) -> Any:
        if self.store.dialect == "sqlite":
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def fill(self) -> float:
        t0 = time.perf_counter()
        config = self.config.model_dump(mode="json")
        for d in range(self.n_dep):
            dep = self.store.ensure_deployment(f"bench-{d}", "bench", "meta-llama/Llama-3.1-8B", "vllm", "disagg")
            self.dep_ids.append(dep)
        # one configuration row, shared by every run (as the store dedupes them)
        run = self.store.begin_run(self.dep_ids[0], "schedule", config, self.start - self.interval)
        self.store.finish_run(run, "ok", self.start - self.interval)
        with self.store.engine.connect() as conn:
            self.config_id = conn.execute(text("SELECT config_id FROM planner_runs WHERE id = :r"), {"r": run}).scalar()
        next_id = {"run": run + 1, "obs": 1, "pred": 1, "dec": 1, "act": 1}
        rnd = random.Random(7)
        per_chunk = max(1, int(86400 / self.interval.total_seconds()))
        for chunk_start in range(0, self.cycles_per_dep, per_chunk):
            runs, obs, preds, decs, acts = [], [], [], [], []
            for i in range(chunk_start, min(self.cycles_per_dep, chunk_start + per_chunk)):
                end = self.start + (i + 1) * self.interval
                ts_end, ts_start = self._ts(end), self._ts(end - self.interval)
                day_phase = (end.hour * 3600 + end.minute * 60) / 86400
                for d, dep in enumerate(self.dep_ids):
                    load = 1500 + 1200 * math.sin(2 * math.pi * (day_phase + d / 10)) + rnd.gauss(0, 80)
                    load = max(50.0, load)
                    tpl_dec, tpl = self.templates[min(3, int(load // 1200))]
                    r, o, dc, a = next_id["run"], next_id["obs"], next_id["dec"], next_id["act"]
                    next_id["run"] += 1
                    next_id["obs"] += 1
                    next_id["dec"] += 1
                    next_id["act"] += 1
                    runs.append((r, dep, "schedule", "ok", ts_end, ts_end, None, self.config_id, None))
                    cur_p, cur_d = tpl_dec.prefill_replicas or 1, tpl_dec.decode_replicas or 1
                    obs.append((o, r, dep, ts_start, ts_end, load, 380.0 + rnd.random() * 200, 28.0 + rnd.random() * 8,
                                3000.0 + rnd.gauss(0, 50), 150.0 + rnd.gauss(0, 5), 5.0, cur_p, cur_d, "ok", None))
                    for s, v in (("num_req", load * 1.02), ("isl", 3000.0), ("osl", 150.0)):
                        preds.append((next_id["pred"], r, s, "arima", v, v * 1.15, 0.9, 1))
                        next_id["pred"] += 1
                    decs.append((dc, r, dep, ts_end, self._bool(False), *tpl))
                    acts.append((a, dc, dep, "kubernetes", tpl_dec.prefill_replicas, tpl_dec.decode_replicas,
                                 ts_end, ts_end, "applied", None))
            self._bulk("planner_runs", RUN_COLS, runs)
            self._bulk("observations", OBS_COLS, obs)
            self._bulk("predictions", PRED_COLS, preds)
            self._bulk("decisions", DEC_COLS, decs)
            self._bulk("scaling_actions", ACT_COLS, acts)
            self.rows += len(runs) + len(obs) + len(preds) + len(decs) + len(acts)
            print(f"  filled {min(self.cycles_per_dep, chunk_start + per_chunk) * self.n_dep:>8} cycles "
                  f"({self.rows:,} rows, {time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        self._finish()
        return time.perf_counter() - t0

    def _bool(self, v: bool) -> Any:
        return int(v) if self.store.dialect == "sqlite" else v

    def _bulk(self, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
        raw = self.store.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            if self.store.dialect == "sqlite":
                marks = ", ".join("?" * len(cols))
                dbapi.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
                dbapi.commit()
            else:
                with dbapi.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                dbapi.commit()
        finally:
            raw.close()

    def _finish(self) -> None:
        with self.store.engine.begin() as conn:
            if self.store.dialect == "postgresql":
                for table in ("planner_runs", "observations", "predictions", "decisions", "scaling_actions"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      f"(SELECT MAX(id) FROM {table}))"))
            else:
                conn.execute(text("ANALYZE"))
        if self.store.dialect == "postgresql":  # what autovacuum would have done by now on a live DB
            with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
                # and the checkpointer: otherwise the timings below run while ~800 MB of freshly
                # loaded pages are being flushed (seconds of write bursts on a small machine),
                # which a database holding 30 days of history is not doing
                conn.execute(text("CHECKPOINT"))


def time_cycles(store: Store, filler: Filler, samples: int) -> dict[str, Any]:
    dep = filler.dep_ids[0]
    config = filler.config.model_dump(mode="json")
    dec_tpl = filler.templates[1][0]
    at = filler.start + filler.cycles_per_dep * filler.interval
    plain: list[float] = []
    locked: list[float] = []
    state = {"level": 1234.5, "trend": 0.5, "P": [[1.0, 0.1], [0.1, 2.0]], "history": list(range(50))}
    for _ in range(samples):
        at += filler.interval
        obs = Observation(at - filler.interval, at, 1200.0, 410.0, 31.0, 3000.0, 150.0, 5.0, Replicas(2, 4))
        fc = {s: SeriesForecast("arima", v, v * 1.1) for s, v in (("num_req", 1210.0), ("isl", 3000.0), ("osl", 150.0))}
        t0 = time.perf_counter()
        with store.cycle_lock(dep):
            t1 = time.perf_counter()
            run = store.begin_run(dep, "schedule", config, at)
            store.record_observation(run, obs)
            store.record_predictions(run, fc)
            dec = store.record_decision(run, dec_tpl, dry_run=False)
            act = store.record_action_requested(dec, "kubernetes", dec_tpl.targets, at)
            store.record_action_outcome(act, ScalingOutcome("kubernetes", dec_tpl.targets, "applied", at, at))
            for series in SERIES:
                store.save_predictor_state(dep, series, "arima", state, at)
            store.finish_run(run, "ok", at)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        plain.append(t2 - t1)
        locked.append(t3 - t0)
    return {"cycle_write": summary(plain), "cycle_write_locked": summary(locked)}


def time_reads(store: Store, filler: Filler, repeats: int) -> dict[str, Any]:
    dep = filler.dep_ids[1]
    newest = filler.start + filler.cycles_per_dep * filler.interval
    warm, warm_sep, hist, hist_all = [], [], [], []
    n_points = n_rows = 0
    # first call in a fresh process-like state: new engine, new connection, cold statement cache
    cold_store = Store(store.url, check_schema=False)
    t0 = time.perf_counter()
    cold_store.load_histories(dep, SERIES, since=newest - timedelta(days=7))
    for series in SERIES:
        cold_store.load_predictor_state(dep, series, "arima")
    cold_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold_store.latest_cycles("bench/bench-1", since=newest - timedelta(days=1), limit=100_000)
    cold_hist = time.perf_counter() - t0
    cold_store.close()
    for _ in range(repeats):
        t0 = time.perf_counter()
        h = store.load_histories(dep, SERIES, since=newest - timedelta(days=7))
        for series in SERIES:
            store.load_predictor_state(dep, series, "arima")
        warm.append(time.perf_counter() - t0)
        n_points = len(h["num_req"])
        t0 = time.perf_counter()
        for series in SERIES:
            store.load_histories(dep, (series,), since=newest - timedelta(days=7))
        warm_sep.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = store.latest_cycles("bench/bench-1", since=newest - timedelta(days=1), limit=100_000)
        hist.append(time.perf_counter() - t0)
        n_rows = len(rows)
        t0 = time.perf_counter()
        store.latest_cycles(None, since=newest - timedelta(days=1), limit=50)
        hist_all.append(time.perf_counter() - t0)
    return {"warm_start": {**summary(warm), "points_per_series": n_points},
            "warm_start_first_call_ms": round(cold_warm * 1000, 3),
            "history_day_first_call_ms": round(cold_hist * 1000, 3),
            "warm_start_3_queries": summary(warm_sep),
            "history_day": {**summary(hist), "rows": n_rows},
            "history_latest_50_all": summary(hist_all)}


def db_size(store: Store, url: str) -> int:
    if store.dialect == "sqlite":
        path = Path(make_url(url).database or "")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def bench(url: str, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{backend}] {url}", file=sys.stderr, flush=True)
    store = Store(url, check_schema=False)
    store.upgrade()
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    filler = Filler(store, args.deployments, args.days, args.interval_s, end)
    fill_s = filler.fill()
    counts = store.table_counts()
    if args.gc_freeze:  # a long-running planner's heap, not the bulk fill's garbage, is what GC walks
        gc.collect()
        gc.freeze()
    writes = time_cycles(store, filler, args.samples)
    reads = time_reads(store, filler, args.repeats)
    size_bytes = db_size(store, url)
    store.close()
    result = {
        "backend": backend, "days": args.days, "deployments": args.deployments, "interval_s": args.interval_s,
        "cycles": filler.cycles_per_dep * args.deployments, "rows": sum(counts.values()), "table_rows": counts,
        "fill_s": round(fill_s, 1), "db_size_mb": round(size_bytes / 2**20, 1), **writes, **reads,
    }
    result["targets_met"] = {
        "cycle_write_p95<20ms": writes["cycle_write"]["p95_ms"] < TARGETS_MS["cycle_write_p95"],
        "warm_start_p95<100ms": reads["warm_start"]["p95_ms"] < TARGETS_MS["warm_start_p95"],
        "history_day_p95<50ms": reads["history_day"]["p95_ms"] < TARGETS_MS["history_day_p95"],
    }
    return result


def print_result(r: dict[str, Any]) -> None:
    print(f"\n== {r['backend']}: {r['cycles']:,} cycles, {r['rows']:,} rows, fill {r['fill_s']}s, "
          f"database {r['db_size_mb']} MB")
    for key in ("cycle_write", "cycle_write_locked", "warm_start", "warm_start_3_queries",
                "history_day", "history_latest_50_all"):
        v = r[key]
        extra = {k: v[k] for k in ("points_per_series", "rows") if k in v}
        print(f"  {key:<24} p50 {v['p50_ms']:>8.2f} ms  p95 {v['p95_ms']:>8.2f} ms  max {v['max_ms']:>8.2f} ms"
              f"  n={v['n']} {extra if extra else ''}")
    print(f"  first call on a new connection: warm_start {r['warm_start_first_call_ms']:.2f} ms, "
          f"history_day {r['history_day_first_call_ms']:.2f} ms")
    for (key, target), met in zip(TARGETS_MS.items(), r["targets_met"].values(), strict=True):
        name = key.removesuffix("_p95")
        verdict = "target met" if met else "MISSED"
        print(f"  target {name} p95 < {target:.0f} ms: {r[name]['p95_ms']:.2f} ms -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--samples", type=int, default=300, help="timed cycle writes")
    parser.add_argument("--repeats", type=int, default=20, help="timed reads")
    parser.add_argument("--sqlite-path", default=None, help="SQLite file (default: a temporary file)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.collect()+gc.freeze() after the fill, before timing")
    args = parser.parse_args(argv)
    results = []
    if args.backend in ("sqlite", "both"):
        tmp = tempfile.mkdtemp(prefix="bench_store_")
        path = Path(args.sqlite_path or Path(tmp) / "planner.db")
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
        results.append(bench(f"sqlite:///{path}", "sqlite", args))
        print_result(results[-1])
        if not args.keep:
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
    if args.backend in ("postgres", "both"):
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"planner_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            results.append(bench(url, "postgresql", args))
            print_result(results[-1])
        finally:
            if not args.keep:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps({"bench": "store", "results": results}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

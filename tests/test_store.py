"""Round trip of every row type, read side, views and retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from planner_core.cli import main
from planner_core.config import BUNDLED_PROFILE_DIR, make_config
from planner_core.profiles import load_profile
from planner_core.records import (
    Corrections,
    Decision,
    LoadForecast,
    Observation,
    Replicas,
    ScalingOutcome,
    SeriesForecast,
)
from planner_core.sizing import size
from planner_core.store import Store, StoreError, decision_from_row
from planner_core.store.cycle_row import CYCLE_FIELDS, HISTORY_COLUMNS
from planner_core.store.history import parse_duration, parse_since
from planner_core.store.models import DecisionRow, ObservationRow, PlannerRun, ScalingActionRow

T0 = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
CONFIG = make_config(max_gpu_budget=16, adjustment_interval_s=60, ttft_ms=500, itl_ms=50)
PROFILE = load_profile(BUNDLED_PROFILE_DIR)
CUR = Replicas(2, 4)


def make_decision(num_req: float = 1200.0) -> Decision:
    forecast = LoadForecast(num_req=num_req, isl=3000.0, osl=150.0)
    return size(forecast, PROFILE, CONFIG, Corrections(1.1, 0.9, source="test"))


def make_obs(end: datetime, num_req: float | None = 1000.0, current=CUR, **kw) -> Observation:
    values = dict(num_req=num_req, ttft_ms=420.0, itl_ms=31.5, isl=2990.0, osl=151.0, request_duration_s=5.2)
    values.update(kw)
    return Observation(window_start=end - timedelta(seconds=60), window_end=end, current=current, **values)


def forecasts(v: float = 1100.0) -> dict[str, SeriesForecast]:
    return {
        "num_req": SeriesForecast("arima", v, v * 1.2, 0.9, 1),
        "isl": SeriesForecast("arima", 3000.0, 3300.0, 0.9, 1),
        "osl": SeriesForecast("arima", 150.0, 170.0, 0.9, 1),
    }


@pytest.fixture
def store(db_url):
    s = Store(db_url, check_schema=False)
    s.upgrade()
    yield s
    s.close()


def write_cycle(
    store: Store,
    dep: int,
    at: datetime,
    *,
    num_req=1000.0,
    current=CUR,
    outcome="applied",
    trigger="schedule",
    ttft_ms=420.0,
):
    run = store.begin_run(dep, trigger, CONFIG.model_dump(mode="json"), at)
    store.record_observation(run, make_obs(at, num_req, current, ttft_ms=ttft_ms))
    store.record_predictions(run, forecasts(num_req * 1.1 if num_req else 1.0))
    decision = make_decision(num_req or 1.0)
    dec = store.record_decision(run, decision, dry_run=False)
    act = store.record_action_requested(dec, "virtual", decision.targets, at)
    ack = at + timedelta(seconds=3)
    store.record_action_outcome(act, ScalingOutcome("virtual", decision.targets, outcome, at, ack))
    store.finish_run(run, "ok", at + timedelta(seconds=1))
    return run, dec, act


def test_deployment_round_trip(store):
    dep = store.ensure_deployment("llama", "dynamo", "meta/llama-3.1-8b", "vllm", "disagg")
    assert store.ensure_deployment("llama", "dynamo", "meta/llama-3.1-8b", "vllm", "disagg") == dep
    assert store.ensure_deployment("llama", "other-ns", None, "sglang", "decode") != dep
    assert store.ensure_deployment("llama", "dynamo", "meta/llama-3.1-70b", "vllm", "prefill") == dep
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT model, backend, mode FROM deployments WHERE id = :d"), {"d": dep}).one()
    assert tuple(row) == ("meta/llama-3.1-70b", "vllm", "prefill")
    assert store.deployment_id("llama", "dynamo") == dep
    with pytest.raises(StoreError, match="several namespaces"):
        store.deployment_id("llama")


def test_run_observation_prediction_round_trip(store):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    cest = timezone(timedelta(hours=2))
    started = datetime(2025, 3, 1, 16, 3, 7, 123456, tzinfo=cest)  # non-UTC zone in, UTC out
    config = CONFIG.model_dump(mode="json")
    run = store.begin_run(dep, "manual", config, started, flow_run_id="0b7e-flow")
    run2 = store.begin_run(dep, "manual", config, started + timedelta(minutes=1))
    obs = make_obs(started, 812.5, Replicas(3, None), quality="partial", error="decode pool unknown")
    obs_id = store.record_observation(run, obs)
    store.record_predictions(run, forecasts())
    store.finish_run(run, "held", started + timedelta(seconds=2), error=None)
    with store.engine.connect() as conn:
        r = conn.execute(select(PlannerRun).where(PlannerRun.id == run)).one()
        o = conn.execute(select(ObservationRow).where(ObservationRow.id == obs_id)).one()
        preds = conn.execute(
            text(
                "SELECT series, predictor, value, upper, quantile, horizon FROM predictions "
                "WHERE run_id = :r ORDER BY series"
            ),
            {"r": run},
        ).all()
        cfg = conn.execute(text("SELECT config FROM v_runs WHERE run_id = :r"), {"r": run}).scalar_one()
        n_cfg = conn.execute(text("SELECT COUNT(*) FROM planner_configs")).scalar_one()
    assert r.started_at == started and r.started_at.tzinfo == UTC
    assert r.ended_at == started + timedelta(seconds=2)
    assert (r.trigger, r.status, r.flow_run_id, r.error) == ("manual", "held", "0b7e-flow", None)
    assert n_cfg == 1, "identical configurations are stored once"
    assert (json.loads(cfg) if isinstance(cfg, str) else cfg) == config
    assert (o.window_start, o.window_end) == (obs.window_start, obs.window_end)
    assert o.window_end.tzinfo == UTC
    for name in ("num_req", "ttft_ms", "itl_ms", "isl", "osl", "request_duration_s", "quality", "error"):
        assert getattr(o, name) == getattr(obs, name), name
    assert (o.prefill_replicas, o.decode_replicas) == (3, None)
    assert [tuple(p) for p in preds] == [
        ("isl", "arima", 3000.0, 3300.0, 0.9, 1),
        ("num_req", "arima", 1100.0, 1320.0, 0.9, 1),
        ("osl", "arima", 150.0, 170.0, 0.9, 1),
    ]
    assert run2 > run


def test_arrival_counts_round_trip_for_restarted_planners(store):
    dep = store.ensure_deployment("bursts", "ns", "m", "vllm", "disagg")
    t0 = datetime(2025, 3, 1, 16, 0, tzinfo=UTC)
    for minute, counts in enumerate([(3, 0, 5), None, (0, 9, 1)], start=1):
        run = store.begin_run(dep, "schedule", CONFIG.model_dump(mode="json"), t0 + timedelta(minutes=minute))
        obs = replace(make_obs(t0 + timedelta(minutes=minute), 8.0, CUR), arrival_counts=counts, arrival_window_s=20.0)
        store.record_observation(run, obs)
    got = store.recent_arrival_counts(dep, t0, t0 + timedelta(minutes=3))
    assert got == [((3, 0, 5), 20.0)]  # window ends in [since, before); the row without counts left out
    assert store.recent_arrival_counts(dep, t0, t0 + timedelta(minutes=4)) == [((3, 0, 5), 20.0), ((0, 9, 1), 20.0)]
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT arrival_counts FROM observations ORDER BY id")).scalars().all()
    assert [json.loads(c) if isinstance(c, str) else c for c in stored] == [[3, 0, 5], None, [0, 9, 1]]


def test_decision_round_trip_keeps_every_number(store):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    run = store.begin_run(dep, "schedule", {}, T0)
    decision = replace(
        make_decision(), prefill_infeasible_num_req=12.5, details={"horizon": 2, "quantile": 0.9, "nan": float("nan")}
    )
    assert decision.action == "scale" and decision.prefill_replicas and decision.decode_replicas
    dec_id = store.record_decision(run, decision, dry_run=True)
    with store.engine.connect() as conn:  # migration 0009's column, in the view too (PostgreSQL expands dc.*)
        in_view = conn.execute(
            text("SELECT prefill_infeasible_num_req FROM v_decisions WHERE decision_id = :i"), {"i": dec_id}
        ).scalar()
    assert in_view == 12.5
    with store.engine.connect() as conn:
        row = conn.execute(select(DecisionRow.__table__).where(DecisionRow.id == dec_id)).mappings().one()
    assert row["decided_at"] == T0 and row["dry_run"] in (True, 1) and row["deployment_id"] == dep
    assert row["total_gpus"] == decision.total_gpus
    back = decision_from_row(row)
    for name, want in decision.to_dict().items():
        got = back.to_dict()[name]
        if name == "details":
            assert got == {"horizon": 2, "quantile": 0.9, "nan": None}
        elif isinstance(want, float) and math.isnan(want):
            assert got is None, name  # NaN is stored as NULL
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12), name
        else:
            assert got == want, name


def test_action_and_predictor_state_round_trip(store):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    run = store.begin_run(dep, "schedule", {}, T0)
    dec = store.record_decision(run, make_decision(), dry_run=False)
    act = store.record_action_requested(dec, "kubernetes", Replicas(3, 7), T0)
    with store.engine.connect() as conn:
        row = conn.execute(select(ScalingActionRow).where(ScalingActionRow.id == act)).one()
    assert (row.outcome, row.target_prefill, row.target_decode, row.acknowledged_at) == ("pending", 3, 7, None)
    ack = T0 + timedelta(seconds=42)
    store.record_action_outcome(act, ScalingOutcome("kubernetes", Replicas(3, 7), "error", T0, ack, "409 Conflict"))
    with store.engine.connect() as conn:
        row = conn.execute(select(ScalingActionRow).where(ScalingActionRow.id == act)).one()
    assert (row.outcome, row.acknowledged_at, row.error, row.requested_at) == ("error", ack, "409 Conflict", T0)
    with pytest.raises(StoreError, match="unknown scaling action"):
        store.record_action_outcome(10**9, ScalingOutcome("k", Replicas(1, 1), "applied", T0))

    assert store.load_predictor_state(dep, "num_req", "kalman") is None
    state = {"level": 12.5, "P": [[1.0, 0.0], [0.0, float("inf")]], "nan": float("nan"), "n": 7}
    store.save_predictor_state(dep, "num_req", "kalman", state, T0)
    store.save_predictor_state(dep, "isl", "kalman", {"level": 3000.0}, T0)
    got = store.load_predictor_state(dep, "num_req", "kalman")
    assert got["level"] == 12.5 and got["P"][1][1] == math.inf and math.isnan(got["nan"]) and got["n"] == 7
    store.save_predictor_state(dep, "num_req", "kalman", {"level": 13.0}, T0 + timedelta(minutes=1))
    assert store.load_predictor_state(dep, "num_req", "kalman") == {"level": 13.0}
    assert store.load_predictor_state(dep, "isl", "kalman") == {"level": 3000.0}
    assert store.table_counts()["predictor_state"] == 2


def test_naive_timestamps_are_refused(store):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    with pytest.raises(ValueError, match="naive"):
        store.begin_run(dep, "schedule", {}, datetime(2025, 1, 1, 12, 0))
    run = store.begin_run(dep, "schedule", {}, T0)
    with pytest.raises(ValueError, match="naive"):
        store.record_observation(run, make_obs(datetime(2025, 1, 1, 12, 0)))
    with pytest.raises(StoreError, match="unknown planner run"):
        store.record_observation(10**9, make_obs(T0))


def test_load_history_for_warm_start(store):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    other = store.ensure_deployment("e", "ns", "m", "vllm", "disagg")
    for i in range(10):
        at = T0 + timedelta(minutes=i)
        run = store.begin_run(dep, "schedule", {}, at)
        store.record_observation(run, make_obs(at, None if i == 4 else float(i), quality="no_data" if i == 4 else "ok"))
    run = store.begin_run(other, "schedule", {}, T0)
    store.record_observation(run, make_obs(T0, 999.0))
    hist = store.load_histories(dep)["num_req"]
    assert [v for _, v in hist] == [0.0, 1.0, 2.0, 3.0, None, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert [t for t, _ in hist] == [(T0 + timedelta(minutes=i)).timestamp() for i in range(10)]
    assert [v for _, v in store.load_histories(dep, limit=3)["num_req"]] == [7.0, 8.0, 9.0]
    since = store.load_histories(dep, ("isl",), since=T0 + timedelta(minutes=8))["isl"]
    assert since == [((T0 + timedelta(minutes=m)).timestamp(), 2990.0) for m in (8, 9)]
    both = store.load_histories(dep, ("num_req", "osl"), limit=2)
    assert [v for _, v in both["osl"]] == [151.0, 151.0]
    with pytest.raises(ValueError, match="unknown series"):
        store.load_histories(dep, ("ttft_ms",))


def test_latest_cycles_and_history_command(store, db_url, capsys):
    dep = store.ensure_deployment("llama", "dynamo", "m", "vllm", "disagg")
    other = store.ensure_deployment("mistral", "dynamo", "m2", "vllm", "disagg")
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        write_cycle(store, dep, now - timedelta(minutes=10 - i), num_req=1000.0 + 100 * i)
    write_cycle(store, other, now - timedelta(days=3))
    rows = store.latest_cycles("llama", None, 3)
    assert [r["observed_num_req"] for r in rows] == [1400.0, 1300.0, 1200.0]
    top = rows[0]
    assert top["deployment"] == "llama" and top["predicted_num_req"] == pytest.approx(1540.0)
    assert (top["current_prefill"], top["current_decode"]) == (2, 4)
    assert top["decided_prefill"] is not None and top["applied_decode"] == top["decided_decode"]
    assert top["action_outcome"] == "applied" and top["started_at"].tzinfo == UTC
    assert len(store.latest_cycles(None, None, 100)) == 6
    assert len(store.latest_cycles(None, now - timedelta(days=1), 100)) == 5
    assert len(store.latest_cycles("dynamo/mistral", None, 100)) == 1

    assert main(["history", "--db-url", db_url, "--deployment", "llama", "--limit", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["observed_num_req"] == 1400.0
    assert main(["history", "--db-url", db_url, "--since", "1d", "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 5 and {r["deployment"] for r in table} == {"llama"}
    assert main(["history", "--db-url", db_url]) == 0
    out = capsys.readouterr().out
    assert "P/D decided" in out and "llama" in out and "mistral" in out
    assert main(["history", "--db-url", db_url, "--since", "yesterday-ish"]) == 2


def test_latest_cycles_names_and_namespaces(store):
    a = store.ensure_deployment("llama", "prod", "m", "vllm", "disagg")
    b = store.ensure_deployment("llama", "staging", "m", "vllm", "disagg")
    write_cycle(store, a, T0, num_req=1000.0)
    write_cycle(store, b, T0 + timedelta(minutes=1), num_req=2000.0)
    run = store.begin_run(a, "manual", {}, T0 + timedelta(minutes=2))  # no observation, no decision
    assert store.latest_cycles("nope") == [] and store.latest_cycles("prod/mistral") == []
    both = store.latest_cycles("llama", None, 10)
    assert [(r["namespace"], r["observed_num_req"]) for r in both] == [
        ("prod", None),
        ("staging", 2000.0),
        ("prod", 1000.0),
    ]
    assert both[0]["run_id"] == run and both[0]["decision_id"] is None and both[0]["dry_run"] is None
    assert both[0]["predicted_num_req"] is None and both[0]["applied_prefill"] is None
    only = store.latest_cycles("staging/llama", T0, 10)
    assert len(only) == 1 and only[0]["predictor"] == "arima" and only[0]["predicted_osl"] == 150.0
    assert only[0]["predicted_isl"] == 3000.0 and only[0]["dry_run"] is False
    assert set(only[0]) >= {"reason", "decided_gpus", "action_error", "requested_prefill", "applied_decode"}
    assert list(only[0]) == [f.name for f in CYCLE_FIELDS]  # the keys in the order of a cycle row


@pytest.mark.postgres
def test_postgres_write_pools_keep_decisions_durable(postgres_url):
    store = Store(postgres_url, check_schema=False)
    store.upgrade()
    try:
        # decisions and action requests: autocommit on sessions with synchronous_commit = on
        with store._single(durable=True) as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert conn.connection.driver_connection.autocommit
        with store._single(durable=False) as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
        with store.engine.connect() as conn:  # the main pool is untouched
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        store.close()
    strict = Store(postgres_url, async_commit=False)
    try:
        with strict._single(durable=False) as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        strict.close()


def test_views_answer_the_cookbook_questions(store):
    dep = store.ensure_deployment("llama", "dynamo", "meta/llama", "vllm", "disagg")
    # 60 one-minute cycles at 2 prefill + 4 decode replicas (1 GPU each), then 60 at 2 + 2.
    for i in range(120):
        current = Replicas(2, 4) if i < 60 else Replicas(2, 2)
        ttft = 900.0 if i in (60, 61) else 400.0  # missed right after the scale-down
        write_cycle(store, dep, T0 + timedelta(minutes=i + 1), current=current, ttft_ms=ttft)
    with store.engine.connect() as conn:
        gpu = conn.execute(
            text(
                "SELECT day, gpu_hours, prefill_gpu_hours, decode_gpu_hours, cycles "
                "FROM v_gpu_hours_daily WHERE deployment = 'llama'"
            )
        ).all()
        misses = conn.execute(
            text(
                "SELECT window_end, ttft_ms, ttft_sla_ms, ttft_miss, itl_miss, after_scale_down "
                "FROM v_sla_misses ORDER BY window_end"
            )
        ).all()
        decisions = conn.execute(
            text("SELECT COUNT(*), MIN(current_decode), MAX(current_decode), MAX(action_outcome) FROM v_decisions")
        ).one()
    assert len(gpu) == 1 and str(gpu[0][0]) == "2025-03-01" and gpu[0][4] == 120
    assert gpu[0][1] == pytest.approx(2 * 2 + 1 * 4 + 1 * 2, rel=1e-6)  # 6 + 4 GPUs for an hour each = 10
    assert gpu[0][2] == pytest.approx(4.0, rel=1e-6) and gpu[0][3] == pytest.approx(6.0, rel=1e-6)
    assert len(misses) == 2 and all(m[3] == 1 and m[4] == 0 and m[2] == 500.0 for m in misses)
    assert [m[5] for m in misses] == [1, 0]
    assert tuple(decisions) == (120, 2, 4, "applied")


def test_history_rows_and_the_v_decisions_view_agree(store):
    """A cycle row is defined once (CYCLE_FIELDS); every field the view also has holds the same value."""
    dep = store.ensure_deployment("llama", "dynamo", "meta/llama", "vllm", "disagg")
    for i, outcome in enumerate(("applied", "failed", "unchanged")):
        write_cycle(store, dep, T0 + timedelta(minutes=i + 1), num_req=1000.0 + 100 * i, outcome=outcome)
    run = store.begin_run(dep, "manual", {}, T0 + timedelta(minutes=9))  # a dry run: no action row
    store.record_decision(run, make_decision(), dry_run=True)
    store.finish_run(run, "ok", T0 + timedelta(minutes=9))
    rows = {r["decision_id"]: r for r in store.latest_cycles("dynamo/llama")}
    in_view = [f for f in CYCLE_FIELDS if f.view is not None]
    with store.engine.connect() as conn:
        view = conn.execute(
            text("SELECT " + ", ".join(f.view for f in in_view) + " FROM v_decisions ORDER BY decision_id")
        ).all()
    assert len(view) == len(rows) == 4
    for v in view:
        row = rows[v.decision_id]
        for f in in_view:
            got, want = getattr(v, f.view), row[f.name]
            if isinstance(want, bool):
                got = bool(got)
            if isinstance(want, datetime) and isinstance(got, str):  # SQLite hands the view's timestamps back as text
                got = datetime.fromisoformat(got).replace(tzinfo=UTC)
            elif isinstance(got, datetime):
                got = got.astimezone(UTC)
            assert got == want, (f.name, f.view, got, want)
    assert list(HISTORY_COLUMNS) == [f.name for f in CYCLE_FIELDS if f.export]
    assert set(CYCLE_FIELDS_NAMES := [f.name for f in CYCLE_FIELDS]) == set(next(iter(rows.values())))
    assert len(CYCLE_FIELDS_NAMES) == len(set(CYCLE_FIELDS_NAMES))


def test_prune_deletes_old_cycles_only(store, db_url, capsys):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    now = datetime.now(UTC)
    for days in (200, 100, 91, 10, 0):
        write_cycle(store, dep, now - timedelta(days=days, minutes=1))
    store.save_predictor_state(dep, "num_req", "arima", {"x": 1}, now - timedelta(days=300))
    deleted = store.prune(timedelta(days=90))
    assert deleted == {
        "scaling_actions": 3,
        "predictions": 9,
        "observations": 3,
        "decisions": 3,
        "planner_runs": 3,
        "planner_configs": 0,
    }
    counts = store.table_counts()
    assert (counts["planner_runs"], counts["predictor_state"], counts["deployments"]) == (2, 1, 1)
    assert main(["db", "prune", "--older-than", "5d", "--db-url", db_url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deleted"]["planner_runs"] == 1 and out["older_than_s"] == 5 * 86400
    assert main(["db", "prune", "--older-than", "ninety days", "--db-url", db_url]) == 2


def test_duration_parsing():
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("45") == timedelta(seconds=45)
    now = datetime(2025, 1, 2, tzinfo=UTC)
    assert parse_since("1d", now) == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_since("2025-01-01T10:00:00Z") == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert parse_since("2025-01-01T12:00:00+02:00") == datetime(2025, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_store_url_resolution(tmp_path, monkeypatch):
    from planner_core.store import resolve_url

    monkeypatch.delenv("PLANNER_DB_URL", raising=False)
    assert resolve_url(None) == "sqlite:///planner.db"
    monkeypatch.setenv("PLANNER_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert resolve_url(None).endswith("env.db")
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLANNER_DB_URL")
    Store().close()
    assert (tmp_path / "planner.db").exists()
    with pytest.raises(StoreError, match="unsupported database"):
        Store("mysql://x@y/z")


def test_queued_requests_round_trip_and_unknown_stays_null(store):
    dep = store.ensure_deployment("queue", "ns", "m", "vllm", "disagg")
    t0 = datetime(2025, 3, 1, 16, 0, tzinfo=UTC)
    for minute, queued in enumerate([12.0, None], start=1):
        run = store.begin_run(dep, "schedule", CONFIG.model_dump(mode="json"), t0 + timedelta(minutes=minute))
        obs = replace(make_obs(t0 + timedelta(minutes=minute), 8.0, CUR), queued_requests=queued)
        store.record_observation(run, obs)
    got = store.stored_cycles(dep, t0, t0 + timedelta(minutes=3))
    assert [obs.queued_requests for obs, _ in got] == [12.0, None]

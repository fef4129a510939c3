"""The planning cycle end to end on the simulated cluster, with the real SQLite store."""

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from planner_core.cli import main
from planner_core.config import BUNDLED_TRACE, make_config
from planner_core.cycle import PlanningCycle
from planner_core.ports import DeploymentInfo, SimulatedClock
from planner_core.predictors.resume import build_load_predictor
from planner_core.profiles import load_profile
from planner_core.records import LoadForecast, Observation, Replicas, ScalingOutcome
from planner_core.sim.replay import load_workload, run_policy
from planner_core.sizing import size
from planner_core.store import Store

PROFILE = load_profile(make_config().profile_dir())


@pytest.fixture(scope="module")
def workload():
    # the burst stress test (copies within 1 s): at x3 with copies spread over the interval, both
    # planners meet the SLA for every request, and the comparison below would say nothing
    return load_workload(BUNDLED_TRACE, load_scale=3, seed=1, duration_s=600, copy_jitter_s=1.0)


def config(**over):
    return make_config(**{"adjustment_interval_s": 60, "max_gpu_budget": 64, "load_predictor": "constant", **over})


def test_replay_scores_and_persists_every_cycle(workload, sqlite_url):
    store = Store(sqlite_url)
    result = run_policy(workload, config(), "default", store=store, profile=PROFILE, deployment_name="t")
    assert result.requests == len(workload) and result.unfinished == 0
    # the planner keeps this load within the SLA (a cycle that never scaled would not)
    assert result.sla_attainment >= 0.98 and result.scaling_actions > 0
    assert result.gpu_hours > 0 and result.oracle_gpu_hours > 0
    rows = store.latest_cycles("t", None, 100, include_simulated=True)
    assert len(rows) == result.intervals
    assert all(r["status"] in ("ok", "held") for r in rows)
    # what was stored is what happened: every request observed once, in the interval it arrived
    interval = config().adjustment_interval_s
    counts = np.bincount((workload.arrival_s // interval).astype(int), minlength=result.intervals)
    assert [r["observed_num_req"] for r in reversed(rows)] == [float(c) for c in counts]
    # and the replicas decided at the end of interval k ran in interval k + 1
    decided = [(r["decided_prefill"], r["decided_decode"]) for r in reversed(rows)][:-1]
    ran = list(zip(result.timeline["prefill_target"], result.timeline["decode_target"], strict=True))[1:]
    assert decided == ran
    # the predictor state was saved for warm start
    dep = store.deployment_id("t")
    assert store.load_predictor_state(dep, "num_req", "constant") is not None


def test_replay_is_deterministic(workload):
    a = run_policy(workload, config(), "default", profile=PROFILE)
    b = run_policy(workload, config(), "default", profile=PROFILE)
    assert a.summary() | {"wall_s": 0} == b.summary() | {"wall_s": 0}


def test_oracle_and_static_baselines(workload):
    oracle = run_policy(workload, config(), "oracle", profile=PROFILE)
    static = run_policy(workload, config(), "static", profile=PROFILE)
    default = run_policy(workload, config(), "default", profile=PROFILE)
    # the oracle meets the SLA in every interval, so overall; and it needs no start-up headroom
    assert oracle.sla_attainment >= 0.98
    assert oracle.gpu_hours < default.gpu_hours
    # it runs exactly its plan: its replicas change when the plan does, and only then
    plan = list(zip(oracle.timeline["oracle_prefill"], oracle.timeline["oracle_decode"], strict=True))
    ran = list(zip(oracle.timeline["prefill_target"], oracle.timeline["decode_target"], strict=True))
    assert ran == plan
    assert oracle.scaling_actions == sum(a != b for a, b in itertools.pairwise(plan))
    # static: Dynamo's arithmetic on the busiest interval's actual load, the whole time
    interval = config().adjustment_interval_s
    bins = (workload.arrival_s // interval).astype(int)
    peak = np.bincount(bins).argmax()
    in_peak = bins == peak
    expected = size(
        LoadForecast(float(in_peak.sum()), float(workload.isl[in_peak].mean()), float(workload.osl[in_peak].mean())),
        PROFILE,
        config(policy="dynamo"),
    )
    assert set(static.timeline["prefill_target"]) == {expected.prefill_replicas}
    assert set(static.timeline["decode_target"]) == {expected.decode_replicas}
    busiest_gpus = expected.prefill_replicas + expected.decode_replicas
    assert static.gpu_hours >= busiest_gpus * static.intervals * interval / 3600 * 0.99


def test_default_beats_dynamo_on_attainment():
    # at x3 both start sized for the first intervals and meet the SLA alike (99.84 %); at x6 on
    # the burst stress test Dynamo's arithmetic, which plans decode engines past their 256
    # running sequences, queues admissions (5 %), ours meets it (99.9 %)
    heavier = load_workload(BUNDLED_TRACE, load_scale=6, seed=1, duration_s=600, copy_jitter_s=1.0)
    ours = run_policy(heavier, config(load_predictor="auto"), "default", profile=PROFILE)
    dynamo = run_policy(heavier, config(), "dynamo", profile=PROFILE)
    assert dynamo.predictor == "arima"
    assert ours.sla_attainment > 0.99 > 0.5 > dynamo.sla_attainment


class SettledConnector:
    """The read side of the Connector protocol for a cluster with nothing rolling out."""

    def validate(self):
        return DeploymentInfo(None, 1, 1)

    def ready_replicas(self):
        return self.current_replicas()

    def rolling_out(self):
        return None


class RaisingConnector(SettledConnector):
    name = "broken"

    def current_replicas(self):
        return Replicas(2, 2)

    def apply(self, targets, decision_id, requested_at):
        raise ConnectionError("API server unreachable")


class FixedMetrics:
    """A frontend that reports fixed numbers (or no data at all)."""

    def __init__(self, num_req, quality="ok"):
        self.num_req, self.quality = num_req, quality

    def observe(self, window_start, window_end):
        if self.num_req is None:
            return Observation(window_start, window_end, None, None, None, None, None, None, quality="no_data")
        return Observation(window_start, window_end, self.num_req, 80.0, 20.0, 3000, 150, 4.0)


def make_cycle(store, metrics, connector, predictor="constant"):
    cfg = config(load_predictor=predictor)
    dep = store.ensure_deployment("unit", "dynamo", None, "vllm", "disagg")
    return PlanningCycle(
        config=cfg,
        profile=PROFILE,
        metrics=metrics,
        connector=connector,
        clock=SimulatedClock(datetime(2026, 1, 1, 0, 1, tzinfo=UTC)),
        predictor=build_load_predictor(cfg, store, dep),
        store=store,
        deployment_id=dep,
    )


def test_connector_failure_is_recorded_as_error(sqlite_url):
    store = Store(sqlite_url)
    result = make_cycle(store, FixedMetrics(1200), RaisingConnector()).run()
    assert result.status == "error" and "API server unreachable" in result.error
    assert result.decision is not None  # the decision was committed before the call
    row = store.latest_cycles("unit", None, 1)[0]
    assert row["status"] == "error"
    assert store.pending_actions(store.deployment_id("unit")) == []  # outcome recorded


class RecordingConnector(SettledConnector):
    name = "recording"

    def __init__(self):
        self.calls = []

    def current_replicas(self):
        return Replicas(3, 3)

    def apply(self, targets, decision_id, requested_at):
        self.calls.append(targets)
        return ScalingOutcome(self.name, targets, "applied", requested_at)


def test_missing_metrics_hold_and_never_scale(sqlite_url):
    store = Store(sqlite_url)
    connector = RecordingConnector()
    result = make_cycle(store, FixedMetrics(None), connector).run()
    assert result.status == "held"
    assert result.decision.action == "hold"
    assert (result.decision.prefill_replicas, result.decision.decode_replicas) == (3, 3)
    assert connector.calls == []


def test_restart_resumes_forecast_from_store(sqlite_url):
    store = Store(sqlite_url)
    cycle = make_cycle(store, FixedMetrics(1200), RecordingConnector(), predictor="kalman")
    for minute in range(2, 8):
        cycle.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        cycle.metrics.num_req = 1000 + 50 * minute
        cycle.run()
    expected = cycle.predictor.predict()
    resumed = build_load_predictor(cycle.config, store, cycle.deployment_id)
    assert resumed.predict() == expected


def test_second_cycle_waits_for_the_lock(sqlite_url):
    store = Store(sqlite_url)
    cycle = make_cycle(store, FixedMetrics(1200), RecordingConnector())
    with Store(sqlite_url).cycle_lock(cycle.deployment_id):
        result = cycle.run(lock_wait_s=0.0)
    assert result.status == "skipped_locked"
    assert "being planned by" in result.error
    assert result.run_id is None  # nothing was written


def test_replay_cli_json_and_report(tmp_path, capsys):
    code = main(
        [
            "replay",
            "--duration-s",
            "300",
            "--load-scale",
            "2",
            "--no-store",
            "--json",
            "--load-predictor",
            "constant",
            "--report-dir",
            str(tmp_path / "report"),
            "--compare",
            "default,oracle",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out["results"]] == ["default", "oracle"]
    for key in (
        "requests",
        "sla_attainment",
        "ttft_attainment",
        "itl_attainment",
        "p50_ttft_ms",
        "p99_ttft_ms",
        "p50_itl_ms",
        "p99_itl_ms",
        "gpu_hours",
        "oracle_gpu_hours",
        "scaling_actions",
        "wall_s",
    ):
        assert key in out["results"][0]
        assert out["results"][0][key] is None or not (
            isinstance(out["results"][0][key], float) and math.isnan(out["results"][0][key])
        )
    for name in ("load.png", "replicas.png", "latency.png", "index.html"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    # the numbers printed are the replay's: the same workload run in process gives them
    workload = load_workload(BUNDLED_TRACE, load_scale=2, seed=0, duration_s=300)
    cli_config = make_config(adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant")
    for printed in out["results"]:
        direct = run_policy(workload, cli_config, printed["policy"], profile=PROFILE).summary()
        assert {k: v for k, v in printed.items() if k != "wall_s"} == {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in direct.items() if k != "wall_s"
        }
    # ... and the report's table and raw results show them
    page = (tmp_path / "report" / "index.html").read_text()
    for printed in out["results"]:
        assert f"<td>{printed['policy']}</td>" in page
        assert f"{100 * printed['sla_attainment']:.2f}%" in page
        assert json.dumps(printed["gpu_hours"]) in page
    for image in ("load.png", "replicas.png", "latency.png"):
        assert f'src="{image}"' in page
        assert (tmp_path / "report" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_cli_rejects_bad_input(capsys, tmp_path):
    assert main(["replay", "--compare", "default,magic", "--no-store"]) == 2
    assert "unknown policy magic" in capsys.readouterr().err
    assert main(["replay", "--load-scale", "-1", "--no-store"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:47.0000000,12,x\n")
    assert main(["replay", "--trace", str(bad), "--no-store"]) == 2
    assert "line 2" in capsys.readouterr().err


class BurstyMetrics:
    """1200 requests a minute; in minutes 2 and 3 a quarter of them arrive in one second."""

    def observe(self, window_start, window_end):
        counts = [20] * 60
        if window_end.minute in (2, 3):
            counts = [15] * 60
            counts[10] += 1200 - sum(counts)
        return Observation(
            window_start, window_end, float(sum(counts)), 80.0, 20.0, 3000, 150, 4.0, arrival_counts=tuple(counts)
        )


def _bursty_cycle(store, name):
    cfg = config(scale_down_stabilization_s=120)
    dep = store.ensure_deployment(name, "dynamo", None, "vllm", "disagg")
    return PlanningCycle(
        config=cfg,
        profile=PROFILE,
        metrics=BurstyMetrics(),
        connector=RecordingConnector(),
        clock=SimulatedClock(datetime(2026, 1, 1, 0, 1, tzinfo=UTC)),
        predictor=build_load_predictor(cfg, store, dep),
        store=store,
        deployment_id=dep,
        stabilizer=PlanningCycle.default_stabilizer(cfg),
    )


def test_restarted_cycle_remembers_bursts_and_stabilisation(sqlite_url):
    """A planner started per interval (a flow run) decides as the long-running one: the burst
    patterns and the stabiliser's recent targets come back from the store."""
    store = Store(sqlite_url)
    minutes = range(2, 9)

    def at(cycle, minute):
        cycle.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        return cycle.run().decision

    running = _bursty_cycle(store, "long-running")
    uninterrupted = [at(running, m) for m in minutes]
    restarted = [at(_bursty_cycle(store, "per-interval"), m) for m in minutes]  # a new process each time

    assert [(d.prefill_replicas, d.decode_replicas, d.details) for d in restarted] == [
        (d.prefill_replicas, d.decode_replicas, d.details) for d in uninterrupted
    ]
    # The test can fail: minute 4 is calm, yet its prefill still plans for minute 3's burst,
    # and minute 7 (the burst out of memory) is held up by the stabilisation window.
    calm = uninterrupted[2].details
    assert calm["prefill_replicas_bursts"] > calm["prefill_replicas_poisson"]
    assert "stabilized_from" in uninterrupted[5].details
    stored = store.recent_arrival_counts(store.deployment_id("per-interval"), datetime(2026, 1, 1, tzinfo=UTC),
                                         datetime(2026, 1, 1, 0, 3, 30, tzinfo=UTC))
    assert [max(c) for c, _ in stored] == [1200 - 15 * 59, 1200 - 15 * 59]


class ScriptedMetrics:
    """Reports the request count scripted for each minute; ISL/OSL/latency means are undefined
    (None) in a minute without requests, as Prometheus' 0/0 is."""

    def __init__(self, counts_by_minute):
        self.counts = counts_by_minute

    def observe(self, window_start, window_end):
        n = self.counts[window_end.minute]
        if n == 0:
            return Observation(window_start, window_end, 0.0, None, None, None, None, None)
        return Observation(window_start, window_end, float(n), 80.0, 20.0, 3000, 150, 4.0)


def _scripted_cycle(store, name, counts, **over):
    cfg = config(**over)
    dep = store.ensure_deployment(name, "dynamo", None, "vllm", "disagg")
    return PlanningCycle(
        config=cfg,
        profile=PROFILE,
        metrics=ScriptedMetrics(counts),
        connector=RecordingConnector(),
        clock=SimulatedClock(datetime(2026, 1, 1, 0, 1, tzinfo=UTC)),
        predictor=build_load_predictor(cfg, store, dep),
        store=store,
        deployment_id=dep,
    )


def test_zero_traffic_is_load_not_missing_data():
    def obs(num_req, isl):
        return Observation(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
                           num_req, None, None, isl, isl, None)

    assert obs(0.0, None).has_load()  # traffic stopped: ISL/OSL means are undefined, not missing
    assert not obs(None, None).has_load()  # the scrape saw nothing
    assert not obs(math.nan, 3000.0).has_load()
    assert not obs(12.0, None).has_load()  # requests without their lengths: partial data
    assert obs(12.0, 3000.0).has_load()


def test_idle_deployment_holds_for_the_cooldown_then_shrinks(sqlite_url):
    store = Store(sqlite_url)
    counts = {2: 6000, 3: 6000} | {m: 0 for m in range(4, 12)}
    cycle = _scripted_cycle(store, "idle", counts, idle_cooldown_s=180)
    decisions = {}
    for minute in range(2, 12):
        cycle.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        decisions[minute] = cycle.run().decision
    busy = decisions[3]
    assert busy.action == "scale" and busy.prefill_replicas > 1
    # idle for 60 s and 120 s: hold (the next burst may come), and say why
    for minute in (4, 5):
        assert decisions[minute].action == "hold"
        assert "cooldown 180 s" in decisions[minute].reason
    # idle for 180 s: traffic has stopped; the pools go down (the predictor's forecast decides)
    assert decisions[6].action == "scale"
    assert decisions[11].prefill_replicas < busy.prefill_replicas

    # A new process mid-idle (a flow run) counts the idle minutes already stored.
    store2 = Store(sqlite_url)
    counts2 = {2: 6000} | {m: 0 for m in range(3, 12)}
    first = _scripted_cycle(store2, "idle-restart", counts2, idle_cooldown_s=180)
    for minute in (2, 3, 4):
        first.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        assert first.run().decision.action == ("scale" if minute == 2 else "hold")
    restarted = _scripted_cycle(store2, "idle-restart", counts2, idle_cooldown_s=180)
    restarted.clock.set(datetime(2026, 1, 1, 0, 5, tzinfo=UTC))
    assert restarted.run().decision.action == "scale"  # 180 s idle: 120 s from the store + this minute


def test_dynamo_policy_holds_while_idle_as_dynamo_does(sqlite_url):
    store = Store(sqlite_url)
    counts = {2: 6000} | {m: 0 for m in range(3, 20)}
    cycle = _scripted_cycle(store, "idle-dynamo", counts, policy="dynamo", idle_cooldown_s=60)
    actions = []
    for minute in range(2, 20):
        cycle.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        actions.append(cycle.run().decision.action)
    assert actions == ["scale"] + ["hold"] * 17


def test_clairvoyant_diagnostic_reads_the_future(workload):
    from planner_core.sim.replay import ClairvoyantPredictor

    seer = ClairvoyantPredictor(workload, interval_s=60.0, startup_s=60.0)
    end = workload.start + timedelta(minutes=3)
    seer.observe(Observation(end - timedelta(minutes=1), end, None, None, None, None, None, None))
    forecast = seer.predict()
    a = workload.arrival_s
    ahead = [(a >= s) & (a < s + 60) for s in (180.0, 240.0)]  # the next interval and the one after
    assert forecast.num_req == max(int(m.sum()) for m in ahead)
    assert forecast.isl == pytest.approx(max(float(workload.isl[m].mean()) for m in ahead))
    assert forecast.num_req_upper == forecast.num_req

    result = run_policy(workload, config(), "clairvoyant", startup_s=60.0, profile=PROFILE)
    assert result.predictor == "clairvoyant" and result.requests == len(workload)
    # in the closed loop too, each decision was made for the actual future: the busier of the
    # next two intervals (start-up 60 s = one interval ahead)
    counts = np.bincount((a // 60).astype(int), minlength=result.intervals + 2)
    for k in range(1, result.intervals):
        assert result.timeline["predicted_num_req"][k] == max(counts[k], counts[k + 1]), k


def test_unusable_saved_predictor_state_rebuilds_from_history(sqlite_url, caplog):
    """A state saved by another version (here: an ``auto`` with other candidates) must not stop
    the planner; it rebuilds the predictor from the stored observations instead."""
    store = Store(sqlite_url)
    cycle = make_cycle(store, FixedMetrics(1200), RecordingConnector(), predictor="auto")
    for minute in range(2, 8):
        cycle.clock.set(datetime(2026, 1, 1, 0, minute, tzinfo=UTC))
        cycle.metrics.num_req = 1000 + 50 * minute
        cycle.run()
    dep = cycle.deployment_id
    for series in ("num_req", "isl", "osl"):
        state = store.load_predictor_state(dep, series, "auto")
        state["model"]["names"] = ["a-candidate-this-version-lacks"]
        store.save_predictor_state(dep, series, "auto", state, datetime(2026, 1, 1, 0, 8, tzinfo=UTC))
    with caplog.at_level("WARNING"):
        resumed = build_load_predictor(cycle.config, store, dep)
    assert "rebuilding it from the observation history" in caplog.text
    from planner_core.predictors import LoadPredictor

    assert resumed.predict() == LoadPredictor.from_history(cycle.config, store.load_histories(dep)).predict()


def test_replay_cli_passes_default_policy_knobs_to_the_stored_config(sqlite_url, capsys):
    code = main(["replay", "--duration-s", "180", "--db-url", sqlite_url, "--json", "--predictor", "constant",
                 "--sla-attainment", "0.98", "--idle-cooldown", "120", "--decode-target-utilization", "0.9"])
    assert code == 0
    capsys.readouterr()
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        cfg = conn.execute(
            text(
                "SELECT c.config FROM planner_runs r JOIN planner_configs c ON c.id = r.config_id "
                "ORDER BY r.id DESC LIMIT 1"
            )
        ).scalar_one()
    cfg = json.loads(cfg) if isinstance(cfg, str) else cfg
    assert (cfg["sla_attainment"], cfg["idle_cooldown_s"], cfg["decode_target_utilization"]) == (0.98, 120, 0.9)


def test_replay_cli_speed_up_and_copy_jitter(capsys):
    """--speed-up compresses time (--duration-s counts replayed seconds); --copy-jitter-s spreads
    load scaling's copies (default: the interval) and only moves them, never adds or drops one."""
    from planner_core.traces import read_trace

    trace = read_trace(BUNDLED_TRACE)
    args = ["replay", "--no-store", "--json", "--load-predictor", "constant", "--policy", "oracle"]
    assert main([*args, "--speed-up", "10", "--duration-s", "60", "--load-scale", "1"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["requests"] == int(np.sum(trace.arrival_s < 600))
    assert "speed-up 10" in captured.err
    counts = {}
    for jitter in ("1", None):
        extra = ["--copy-jitter-s", jitter] if jitter else []
        assert main([*args, "--duration-s", "120", "--load-scale", "3", *extra]) == 0
        captured = capsys.readouterr()
        counts[jitter] = json.loads(captured.out)["requests"]
        assert f"copies within {jitter or '60'} s" in captured.err
    assert counts["1"] == counts[None]


def test_the_replay_starts_sized_for_the_long_prompts_it_opens_with():
    # A planner that had been running before the trace began would have read the frontend's ISL
    # histogram: 30 % of these prompts are far too long for the TTFT SLA and each holds a prefill
    # engine for its whole unloaded prefill time. The replay's start is sized as that planner's
    # forecast would be, histogram included (closer to the oracle's 8 than the mean length alone).
    from planner_core.feasibility import isl_histogram
    from planner_core.metrics import promql
    from planner_core.metrics.exporter import BUCKETS
    from planner_core.sim.replay import Workload, first_interval_replicas

    config = make_config(adjustment_interval_s=60)
    profile = load_profile(config.profile_dir())
    rng = np.random.default_rng(0)
    n = 2400  # 20 req/s
    arrival = np.sort(rng.uniform(0, 120, n))
    isl = np.where(rng.uniform(size=n) < 0.3, 20000.0, 1500.0)
    workload = Workload(arrival, isl, np.full(n, 100.0), "long-prompts")
    start = first_interval_replicas(workload, profile, config)
    first = arrival < 60
    count, mean_isl = float(first.sum()), float(isl[first].mean())
    at_the_mean = size(LoadForecast(count, mean_isl, 100.0), profile, config).targets
    histogram = isl_histogram(isl[first].tolist(), BUCKETS[promql.ISL])
    with_histogram = LoadForecast(count, mean_isl, 100.0, isl_histogram=histogram)
    assert start.prefill == size(with_histogram, profile, config).targets.prefill
    assert start.prefill is not None and at_the_mean.prefill is not None
    assert start.prefill > at_the_mean.prefill

"""The safety rails (planner_core/safety.py), table-tested: the per-cycle scale-down bound and the
stale-data guard, and their numbers on the Decision through the cycle's steps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from planner_core.config import make_config
from planner_core.cycle import stabilise
from planner_core.records import Decision, Observation, Replicas
from planner_core.safety import (
    bound_scale_down,
    guard_stale,
    max_metrics_age_s,
    metrics_age_s,
    scale_down_floor,
    with_metrics_age,
)

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _decision(prefill: int | None, decode: int | None, action: str = "scale", **kw) -> Decision:
    values = dict(
        policy="default",
        mode="disagg",
        action=action,
        reason="sized",
        interval_s=60.0,
        num_req=100.0,
        isl=3000.0,
        osl=150.0,
        ttft_sla_ms=500.0,
        itl_sla_ms=50.0,
        prefill_correction=1.0,
        decode_correction=1.0,
        prefill_correction_applied=1.0,
        decode_correction_applied=1.0,
        prefill_replicas=prefill,
        decode_replicas=decode,
        prefill_gpus=prefill or 0,
        decode_gpus=decode or 0,
        max_gpu_budget=64,
    )
    values.update(kw)
    return Decision(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "percent", "floor"),
    [
        (None, 50, None),  # unknown: nothing to bound against
        (0, 50, 0),
        (1, 50, 0),  # at least one replica per cycle: a pool of 1 may still go
        (2, 50, 1),
        (3, 50, 2),  # 50 % of 3 is 1.5: one replica
        (4, 50, 2),
        (16, 50, 8),
        (16, 25, 12),
        (16, 100, 0),  # 100 %: no bound
        (10, 10, 9),
        (10, 5, 9),  # 0.5 replica rounds down to nothing; the minimum step is 1
        (10, 30, 7),  # 3.0000000000000004 -> 3, not 2
    ],
)
def test_scale_down_floor(current, percent, floor):
    assert scale_down_floor(current, percent) == floor


@pytest.mark.parametrize(
    ("wanted", "current", "percent", "expected", "limited"),
    [
        ((2, 2), Replicas(8, 8), 50, (4, 4), True),  # both pools held at half
        ((6, 2), Replicas(8, 8), 50, (6, 4), True),  # prefill within the bound, decode held
        ((10, 12), Replicas(8, 8), 50, (10, 12), False),  # growth is never bounded
        ((1, 1), Replicas(2, 1), 50, (1, 1), False),  # one replica per cycle always allowed
        ((0, 0), Replicas(3, 3), 50, (2, 2), True),
        ((1, 1), Replicas(8, 8), 100, (1, 1), False),  # 100 % = no bound
        ((1, 1), Replicas(None, 8), 50, (1, 4), True),  # unknown prefill: not bounded
        ((None, 1), Replicas(None, 8), 50, (None, 4), True),  # decode-only mode
    ],
)
def test_bound_scale_down(wanted, current, percent, expected, limited):
    out = bound_scale_down(_decision(*wanted), current, percent)
    assert (out.prefill_replicas, out.decode_replicas) == expected
    assert out.scale_down_limited is limited
    assert out.scale_down_max_percent == percent
    assert (out.prefill_replicas_before_scale_down_limit, out.decode_replicas_before_scale_down_limit) == wanted
    assert out.prefill_scale_down_floor == scale_down_floor(current.prefill, percent)
    assert out.decode_scale_down_floor == scale_down_floor(current.decode, percent)
    assert out.prefill_gpus == (expected[0] or 0) and out.decode_gpus == (expected[1] or 0)
    assert ("scale-down bounded" in out.reason) is limited


def test_bound_leaves_a_hold_and_an_unbounded_policy_alone():
    hold = _decision(8, 8, action="hold")
    assert bound_scale_down(hold, Replicas(8, 8), 50) is hold
    scale = _decision(1, 1)
    assert bound_scale_down(scale, Replicas(8, 8), None) is scale


def test_the_budget_still_wins_after_the_bound():
    """The bound raises targets; the GPU budget is applied after it and stays a hard limit."""
    config = make_config(max_gpu_budget=6, adjustment_interval_s=60)
    sized = _decision(1, 1, max_gpu_budget=6)
    out = stabilise(sized, None, END, None, config, Replicas(4, 8))
    assert out.prefill_replicas_before_scale_down_limit == 1 and out.decode_replicas_before_scale_down_limit == 1
    assert out.scale_down_limited and out.gpus_before_budget == 2 + 4
    assert out.total_gpus <= 6 and (out.prefill_replicas, out.decode_replicas) == (2, 4)
    lowered = stabilise(_decision(4, 8, max_gpu_budget=6), None, END, None, config, Replicas(4, 8))
    assert lowered.total_gpus <= 6 and lowered.budget_limited


def test_the_dynamo_policy_reproduces_dynamo_without_the_bound():
    config = make_config(policy="dynamo", max_gpu_budget=64)
    out = stabilise(_decision(1, 1, policy="dynamo"), None, END, None, config, Replicas(8, 8))
    assert (out.prefill_replicas, out.decode_replicas) == (1, 1) and out.scale_down_max_percent is None


def test_the_bound_is_configurable_with_the_dynamo_style_flag_and_env():
    from planner_core.config import ConfigError, config_from_env

    assert make_config().scale_down_max_percent == 50.0
    assert config_from_env({"PLANNER_SCALE_DOWN_MAX_PERCENT": "25"}).scale_down_max_percent == 25.0
    for bad in ("0", "150", "half"):
        with pytest.raises(ConfigError, match="PLANNER_SCALE_DOWN_MAX_PERCENT"):
            config_from_env({"PLANNER_SCALE_DOWN_MAX_PERCENT": bad})


def _obs(sample_age_s: float | None, quality: str = "ok", interval_s: float = 60.0) -> Observation:
    return Observation(
        window_start=END - timedelta(seconds=interval_s),
        window_end=END,
        num_req=120.0,
        ttft_ms=100.0,
        itl_ms=10.0,
        isl=3000.0,
        osl=150.0,
        request_duration_s=2.0,
        current=Replicas(3, 4),
        quality=quality,
        arrival_counts=(10,) * 12,
        arrival_window_s=5.0,
        sample_time=None if sample_age_s is None else END - timedelta(seconds=sample_age_s),
    )


@pytest.mark.parametrize(
    ("age_s", "quality", "stale", "says"),
    [
        (None, "ok", False, None),  # the source cannot tell: no guard
        (0.0, "ok", False, None),
        (5.0, "ok", False, None),  # one scrape behind
        (120.0, "ok", False, None),  # exactly two intervals: still acted on
        (121.0, "ok", True, "121 s older than the window end"),  # Prometheus stopped / clock forward
        (3600.0, "partial", True, "jumped forward"),
        (-3.0, "ok", False, None),  # a sample a little after the window end (query latency)
        (-121.0, "ok", True, "clock is behind"),  # clock jumped back
        (3600.0, "no_data", False, None),  # nothing to drop
    ],
)
def test_guard_stale(age_s, quality, stale, says):
    obs = _obs(age_s, quality)
    out = guard_stale(obs, 60.0)
    if not stale:
        assert out is obs
        return
    assert out.quality == "stale" and says in (out.error or "")
    assert out.num_req is None and out.isl is None and out.arrival_counts is None and not out.has_load()
    assert out.sample_time == obs.sample_time and out.current == obs.current  # kept for the record
    assert metrics_age_s(out) == pytest.approx(age_s)


def test_the_age_and_the_limit_are_on_the_decision():
    obs = guard_stale(_obs(600.0), 60.0)
    held = with_metrics_age(_decision(3, 4, action="hold", reason="no usable forecast"), obs, 60.0)
    assert held.metrics_age_s == pytest.approx(600.0) and held.max_metrics_age_s == max_metrics_age_s(60.0) == 120.0
    assert held.reason.startswith("stale metrics")
    fresh = with_metrics_age(_decision(3, 4), _obs(2.0), 60.0)
    assert fresh.metrics_age_s == pytest.approx(2.0) and fresh.reason == "sized"


def test_a_stale_cycle_holds_through_the_real_steps():
    """observe -> predict -> size with a source whose newest sample is ten minutes old: the
    forecast is withheld, the decision holds the current replicas and carries the age."""
    from planner_core.cycle import decide, observe, predict
    from planner_core.predictors.load import LoadPredictor
    from planner_core.profiles import load_profile

    config = make_config(adjustment_interval_s=60, arrival_resolution_s=5, load_predictor="constant")

    class Source:
        def observe(self, start, end):
            return replace(_obs(600.0), window_start=start, window_end=end)

    class Cluster:
        name = "test"

        def current_replicas(self):
            return Replicas(3, 4)

    observation = observe(Source(), Cluster(), END - timedelta(seconds=60), END)  # type: ignore[arg-type]
    assert observation.quality == "stale"
    forecast = predict(LoadPredictor(config), observation)
    _, decision = decide(forecast, observation, load_profile(config.profile_dir()), config)
    assert decision.action == "hold" and decision.targets == Replicas(3, 4)
    assert decision.metrics_age_s == pytest.approx(600.0) and decision.max_metrics_age_s == 120.0
    assert "stale metrics" in decision.reason

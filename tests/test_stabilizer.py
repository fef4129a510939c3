from dataclasses import replace
from datetime import UTC, datetime, timedelta

from planner_core.config import BUNDLED_PROFILE_DIR, make_config
from planner_core.profiles import load_profile
from planner_core.records import LoadForecast
from planner_core.sizing import fit_budget, size
from planner_core.stabilizer import Stabilizer

PROFILE = load_profile(BUNDLED_PROFILE_DIR)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def decision(prefill, decode, budget=64):
    base = size(LoadForecast(100, 3000, 150), PROFILE, make_config(max_gpu_budget=budget, adjustment_interval_s=60))
    return replace(base, prefill_replicas=prefill, decode_replicas=decode, prefill_gpus=prefill, decode_gpus=decode)


def test_scale_up_is_immediate_scale_down_waits_for_window():
    s = Stabilizer(window_s=180)
    assert s.apply(decision(2, 2), T0).targets == decision(2, 2).targets
    assert s.apply(decision(6, 4), T0 + timedelta(seconds=60)).targets.prefill == 6
    held = s.apply(decision(3, 2), T0 + timedelta(seconds=120))
    assert (held.prefill_replicas, held.decode_replicas) == (6, 4)
    assert "stabilisation window" in held.reason
    assert held.details["stabilized_from"] == {"prefill": 3, "decode": 2}
    assert held.prefill_gpus == 6
    # 60 s + 180 s later the high recommendation has left the window
    later = s.apply(decision(3, 2), T0 + timedelta(seconds=241))
    assert (later.prefill_replicas, later.decode_replicas) == (3, 2)


def test_zero_window_passes_through():
    s = Stabilizer(window_s=0)
    s.apply(decision(6, 6), T0)
    assert s.apply(decision(1, 1), T0 + timedelta(seconds=1)).targets.prefill == 1


def test_the_budget_is_fitted_after_stabilisation():
    """The stabiliser holds targets; the one budget rule (sizing.fit_budget) then fits them."""
    s = Stabilizer(window_s=600)
    s.apply(decision(6, 1, budget=8), T0)
    held = s.apply(decision(1, 7, budget=8), T0 + timedelta(seconds=60))
    assert (held.prefill_replicas, held.decode_replicas) == (6, 7)  # the stabiliser ignores the budget
    out = fit_budget(held)
    assert out.prefill_gpus + out.decode_gpus <= 8 and out.budget_limited and out.gpus_before_budget == 13
    assert (out.prefill_replicas, out.decode_replicas) == (3, 5)
    assert out.details["stabilized_from"] == {"prefill": 1, "decode": 7}
    assert out.reason.index("stabilisation window") < out.reason.index("GPU budget 8 < 13")


def test_state_round_trip():
    s = Stabilizer(window_s=300)
    s.apply(decision(5, 5), T0)
    again = Stabilizer(window_s=300)
    again.load_state(s.get_state())
    assert again.apply(decision(1, 1), T0 + timedelta(seconds=60)).targets.prefill == 5

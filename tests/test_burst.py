import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner_core.burst import late_share, servers_for_bursts


def test_steady_load_within_capacity_is_never_late():
    assert late_share([10] * 60, 1.0, 0.05, 1, 0.4) == 0.0  # 10 req/s on a 20 req/s engine


def test_overload_backlog_makes_requests_late():
    # 30 req/s on one 20 req/s engine: backlog grows 10 req/s; the limit is 0.4 s * 20 = 8
    share = late_share([30] * 10, 1.0, 0.05, 1, 0.4)
    assert share == pytest.approx((300 - 30 * 0.8) / 300)


def test_burst_then_quiet_drains():
    counts = [100] + [0] * 59  # 100 requests in the first second on engines of 20 req/s each
    one = late_share(counts, 1.0, 0.05, 1, 0.4)
    ten = late_share(counts, 1.0, 0.05, 10, 0.4)
    assert one > 0.5 and ten == 0.0


def test_servers_for_bursts_is_minimal():
    counts = [0] * 30 + [300] + [0] * 29
    c = servers_for_bursts(counts, 1.0, 0.05, 0.45, 0.01)
    assert late_share(counts, 1.0, 0.05, c, 0.45) <= 0.01
    assert late_share(counts, 1.0, 0.05, c - 1, 0.45) > 0.01


def test_empty_and_unreachable():
    assert servers_for_bursts([0] * 60, 1.0, 0.05, 0.45, 0.01) == 0
    assert servers_for_bursts([60] * 60, 1.0, 0.6, -0.1, 0.01) == 36


@given(st.lists(st.integers(0, 500), min_size=2, max_size=60), st.floats(0.01, 0.3), st.floats(0.0, 0.2))
def test_property_more_servers_never_more_late(counts, service_s, late_target):
    budget = 0.5 - service_s
    c = servers_for_bursts(counts, 1.0, service_s, budget, late_target)
    if sum(counts):
        assert late_share(counts, 1.0, service_s, c, budget) <= late_target + 1e-12
        assert late_share(counts, 1.0, service_s, c + 1, budget) <= late_share(counts, 1.0, service_s, c, budget)


def test_a_coarse_step_counts_the_poisson_tail_inside_it():
    # 16 req/s on a 20 req/s engine: the fluid queue never backs up, at any step
    fine = late_share([16] * 60, 1.0, 0.05, 1, 0.1)
    coarse = late_share([80] * 12, 5.0, 0.05, 1, 0.1)
    assert fine == 0.0
    # at 5 s the requests inside each step are Poisson: M/M/1 at load 0.8 waits > 0.1 s with
    # probability 0.8 * exp(-(20 - 16) * 0.1)
    assert coarse == pytest.approx(0.8 * math.exp(-0.4))
    # more engines, less tail; and the sizing follows
    assert late_share([80] * 12, 5.0, 0.05, 2, 0.1) < coarse
    assert servers_for_bursts([80] * 12, 5.0, 0.05, 0.1, 0.01) > servers_for_bursts([16] * 60, 1.0, 0.05, 0.1, 0.01)

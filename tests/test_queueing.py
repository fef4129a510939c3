import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planner_core.queueing import erlang_c, mean_wait_s, servers_for_wait_tail


def erlang_c_textbook(c: int, a: float) -> float:
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (2, 1.0), (5, 3.7), (10, 8.0), (20, 15.5)])
def test_erlang_c_matches_textbook_formula(c, a):
    assert erlang_c(c, a) == pytest.approx(erlang_c_textbook(c, a), rel=1e-12)


def test_mm1_reduces_to_rho():
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # M/M/1 mean wait = rho / (mu - lambda)
    assert mean_wait_s(1, 7.0, 0.1) == pytest.approx(0.7 / (10 - 7))


def test_saturated_pool():
    assert erlang_c(3, 3.0) == 1.0
    assert mean_wait_s(3, 30.0, 0.1) == math.inf


def test_servers_for_wait_tail_meets_target_and_is_minimal():
    lam, s, budget, late = 100.0, 0.06, 0.44, 0.01
    sizing = servers_for_wait_tail(lam, s, budget, late)
    assert sizing.reachable

    def tail(c):
        return erlang_c(c, lam * s) * math.exp(-(c / s - lam) * budget)

    assert tail(sizing.servers) <= late
    assert sizing.servers == 1 + math.floor(lam * s) or tail(sizing.servers - 1) > late
    assert sizing.late_probability == pytest.approx(tail(sizing.servers))


def test_unreachable_when_service_exceeds_sla():
    sizing = servers_for_wait_tail(10.0, 0.6, -0.1, 0.01)
    assert not sizing.reachable and sizing.servers == 7


def test_zero_load():
    assert servers_for_wait_tail(0.0, 0.05, 0.4, 0.01).servers == 0


@given(lam=st.floats(0.01, 2000), s=st.floats(0.005, 0.5), late=st.floats(0.001, 0.2))
def test_property_never_below_offered_load(lam, s, late):
    sizing = servers_for_wait_tail(lam, s, 0.5 - s if s < 0.5 else 0.01, late)
    assert sizing.servers > lam * s


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arrival_rate", [1e9, 1e14 / 60, 1e300])
def test_loads_no_budget_could_serve_return_at_once(arrival_rate):
    """The Erlang walk costs O(load): 1e14 requests a minute used to loop for hours."""
    q = servers_for_wait_tail(arrival_rate, 0.06, 0.44, 0.01)
    assert not q.reachable and q.late_probability == 1.0
    assert q.servers == math.floor(arrival_rate * 0.06) + 1  # the stability count, for the budget to cap
    assert erlang_c(q.servers, arrival_rate * 0.06) == 1.0


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_loads_are_refused(bad):
    with pytest.raises(ValueError, match="finite"):
        servers_for_wait_tail(bad, 0.06, 0.44, 0.01)
    with pytest.raises(ValueError, match="finite"):
        erlang_c(10, bad)

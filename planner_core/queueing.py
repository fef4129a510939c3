"""Queueing arithmetic for prefill sizing (pure, no I/O).

A prefill engine serves one request at a time (the profile is measured at concurrency 1), so
a pool of ``c`` engines fed by the frontend is a multi-server queue. Sizing to 100 % of the
mean token rate, as Dynamo does, leaves the queue at the edge of stability and TTFT unbounded
under bursts. We size instead for the TTFT SLA: the fewest engines for which the share of
requests waiting longer than ``ttft_sla - service_time`` is at most ``1 - attainment``, with
the M/M/c (Erlang C) tail ``P(W > t) = C(c, a) * exp(-(c*mu - lambda) * t)``. Exponential
service times overstate the variance of prefill (its time is nearly deterministic for a given
ISL), so the estimate errs on the side of meeting the SLA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Beyond this many Erlangs no GPU budget is near (a pool this size would be 100,000 engines):
# the sizing reports the stability count without walking the Erlang recursion, whose cost
# grows with the load (1e14 requests per interval used to loop for hours).
MAX_OFFERED_LOAD = 100_000.0


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits, M/M/c with ``offered_load = lambda / mu`` Erlangs."""
    _check_finite("offered_load", offered_load)
    if offered_load <= 0:
        return 0.0
    if servers <= offered_load:
        return 1.0
    if offered_load > MAX_OFFERED_LOAD:
        return 1.0  # the recursion would take ``servers`` steps; "every arrival waits" errs safe
    blocking = 1.0  # Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


def mean_wait_s(servers: int, arrival_rate: float, service_s: float) -> float:
    """Mean queueing delay of M/M/c (infinite when the pool is saturated)."""
    load = arrival_rate * service_s
    if servers <= load:
        return math.inf
    return erlang_c(servers, load) * service_s / (servers - load)


@dataclass(frozen=True)
class QueueSizing:
    servers: int
    offered_load: float  # Erlangs = busy engines on average
    wait_budget_s: float
    wait_probability: float
    late_probability: float  # P(wait > budget) at ``servers``
    reachable: bool
    variability: float = 1.0


def servers_for_wait_tail(
    arrival_rate: float,
    service_s: float,
    wait_budget_s: float,
    late_share: float,
    arrival_dispersion: float = 1.0,
    max_servers: int = 100_000,
    service_scv: float = 1.0,
) -> QueueSizing:
    """Fewest servers so that ``P(wait > wait_budget_s) <= late_share``.

    ``arrival_dispersion`` is the arrivals' squared coefficient of variation, estimated by the
    index of dispersion of counts (1 = Poisson), and ``service_scv`` the service times' (1 =
    exponential). Following the Allen-Cunneen approximation for G/G/c, waits grow by
    ``(dispersion + service_scv) / 2`` over M/M/c, so the tail decays that much more slowly;
    values below 1 are treated as 1 (we never plan for smoother than M/M/c).
    """
    variability = (max(1.0, arrival_dispersion) + max(1.0, service_scv)) / 2.0
    _check_finite("arrival_rate * service_s", arrival_rate * service_s)  # before max(): max(0, nan) is 0
    load = max(0.0, arrival_rate * service_s)
    if load == 0:
        return QueueSizing(0, 0.0, wait_budget_s, 0.0, 0.0, True)
    if load > min(MAX_OFFERED_LOAD, max_servers):
        # No budget holds this pool: report the stability count without the O(load) walk.
        return QueueSizing(math.floor(load) + 1, load, wait_budget_s, 1.0, 1.0, False, variability)
    if wait_budget_s <= 0:
        # Service alone exceeds the SLA: no count of engines helps; size for stability only.
        servers = math.floor(load) + 1
        return QueueSizing(servers, load, wait_budget_s, erlang_c(servers, load), 1.0, False)
    servers = math.floor(load) + 1
    # Walk up the Erlang B recursion once rather than restarting it for every candidate.
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    while True:
        wait_p = servers * blocking / (servers - load * (1.0 - blocking))
        late = wait_p * math.exp(-(servers - load) / service_s * wait_budget_s / variability)
        if late <= late_share or servers >= max_servers:
            return QueueSizing(servers, load, wait_budget_s, wait_p, late, late <= late_share, variability)
        servers += 1
        blocking = load * blocking / (servers + load * blocking)

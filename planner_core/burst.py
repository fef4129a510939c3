"""Prefill sizing for the busiest part of an interval (pure, no I/O).

The frontend's request counter, read at a fine step (``arrival_counts``: requests per
``window_s`` sub-window of the last interval), shows how bursty the traffic is. We replay
those counts, scaled to the forecast, through a fluid first-come-first-served queue of ``c``
prefill engines (each sub-window's requests spread evenly over it) and take the fewest engines
for which at most ``late_share`` of the requests wait longer than the budget. On the Azure
traces this tracks the per-interval oracle far better than any mean-rate or Poisson model,
because real arrivals come in bursts that the interval mean hides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner_core.queueing import erlang_c

# At this step or finer the counts carry the bursts themselves (what the policy was tuned on).
FINE_STEP_S = 1.0


def late_share(counts: Sequence[float], window_s: float, service_s: float, servers: int, wait_budget_s: float) -> float:
    """Share of requests whose queueing wait exceeds ``wait_budget_s``.

    With a step coarser than :data:`FINE_STEP_S` (a 5 or 15 s scrape), spreading a step's
    requests evenly hides the bursts inside it; so where the fluid queue says a step is on time,
    its requests are taken as Poisson arrivals at the step's rate and the M/M/c tail of the wait
    left before the budget counts as late too. Measured on the Azure traces, this gives back most
    of what the coarse step loses (README, "Arrival resolution")."""
    total = float(sum(counts))
    if total <= 0:
        return 0.0
    if servers <= 0:
        return 1.0
    rate = servers / service_s  # requests the pool clears per second
    limit = wait_budget_s * rate  # backlog (in requests) above which a new arrival is late
    backlog = 0.0
    late = 0.0
    for n in counts:
        arrival_rate = n / window_s
        drift = arrival_rate - rate
        if n > 0:
            if drift > 0:  # backlog grows through the window: late from when it passes the limit
                start = max(0.0, (limit - backlog) / drift)
                late += arrival_rate * max(0.0, window_s - start)
            elif backlog > limit:  # backlog shrinks: late until it falls below the limit
                end = (backlog - limit) / -drift if drift < 0 else window_s
                late += arrival_rate * min(window_s, end)
        if n > 0 and window_s > FINE_STEP_S and drift < 0 and backlog <= limit:
            remaining_s = (limit - backlog) / rate
            tail = erlang_c(servers, arrival_rate * service_s) * math.exp(-(rate - arrival_rate) * remaining_s)
            late += n * tail
        backlog = max(0.0, backlog + drift * window_s)
    return min(1.0, late / total)


def servers_for_bursts(
    counts: Sequence[float],
    window_s: float,
    service_s: float,
    wait_budget_s: float,
    late_target: float,
    max_servers: int = 100_000,
) -> int:
    """Fewest engines keeping :func:`late_share` at or below ``late_target``."""
    total = float(sum(counts))
    if total <= 0:
        return 0
    if wait_budget_s <= 0:  # service alone breaks the SLA: size for throughput only
        return max(1, math.ceil(total * service_s / (window_s * len(counts))))
    lo = max(1, math.floor(total * service_s / (window_s * len(counts))))
    hi = lo
    while late_share(counts, window_s, service_s, hi, wait_budget_s) > late_target and hi < max_servers:
        hi = min(max_servers, hi * 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if late_share(counts, window_s, service_s, mid, wait_budget_s) > late_target:
            lo = mid + 1
        else:
            hi = mid
    return hi

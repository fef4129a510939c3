"""The replay's frontend: what Dynamo's frontend reports for a window, read from the simulator.

It follows the real frontend's observation points (``lib/llm/src/http/service/metrics.rs``):

* request count: requests *started* (accepted) in the window (``requests_started_total``);
* TTFT and ISL: requests whose first token came in the window (the frontend observes both
  with the first token);
* ITL: per output token, so the window's mean is token-weighted, sum of (finish - first
  token) over sum of OSL of the requests finished in the window (the simulator credits a
  request's tokens when it finishes; the real frontend as they stream);
* OSL and request duration: requests finished in the window;
* arrival counts: the started counter read every ``resolution_s`` (the scrape interval);
* the ISL histogram: the ``input_sequence_tokens`` buckets' increases over the window, with the
  frontend's bucket bounds (what tells the planner how many prompts are too long for the TTFT
  SLA, :mod:`planner_core.feasibility`).

:class:`SimulatedFrontend` computes these directly from the simulator's event log;
:class:`planner_core.metrics.exporter.ExporterFrontend` gets them through the exporter, a
scrape and the Prometheus source's queries, and gives the same decisions.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from planner_core.feasibility import isl_histogram
from planner_core.metrics import promql
from planner_core.metrics.exporter import BUCKETS
from planner_core.records import Observation, Replicas
from planner_core.sim.cluster import ClusterSimulator, EventLog

ARRIVAL_COUNT_WINDOW_S = 1.0


def arrival_counts(
    arrival_s: np.ndarray, start_s: float, end_s: float, window_s: float = ARRIVAL_COUNT_WINDOW_S
) -> tuple[int, ...] | None:
    """Requests per ``window_s`` sub-window of [start_s, end_s): the frontend counter at a fine step."""
    bins = int((end_s - start_s) // window_s + 1e-9)
    if bins < 1:
        return None
    lo, hi = np.searchsorted(arrival_s, [start_s, start_s + bins * window_s])
    counts = np.bincount(((arrival_s[lo:hi] - start_s) // window_s).astype(np.int64), minlength=bins)[:bins]
    return tuple(int(c) for c in counts)


def _span(times: list[float], start_s: float, end_s: float) -> tuple[int, int]:
    return bisect_left(times, start_s), bisect_left(times, end_s)


def _mean(values: list[float], lo: int, hi: int) -> float | None:
    return math.fsum(values[lo:hi]) / (hi - lo) if hi > lo else None


def frontend_window(log: EventLog, start_s: float, end_s: float) -> dict[str, float | None]:
    """The frontend's window values (see the module docstring); a mean is None when no
    request reached that stage in the window."""
    a0, a1 = _span(log.arrival_s, start_s, end_s)
    f0, f1 = _span(log.first_token_s, start_s, end_s)
    d0, d1 = _span(log.finish_s, start_s, end_s)
    tokens = math.fsum(log.finish_osl[d0:d1])
    decode_ms = math.fsum(i * o for i, o in zip(log.finish_itl_ms[d0:d1], log.finish_osl[d0:d1], strict=True))
    return {
        "num_req": float(a1 - a0),
        "ttft_ms": _mean(log.first_token_ttft_ms, f0, f1),
        "isl": _mean(log.first_token_isl, f0, f1),
        "itl_ms": decode_ms / tokens if tokens > 0 else None,
        "osl": _mean(log.finish_osl, d0, d1),
        "request_duration_s": _mean(log.finish_duration_s, d0, d1),
    }


def waiting_for_first_token(log: EventLog, at_s: float) -> int:
    """Requests arrived before ``at_s`` without a first token yet: what the frontend's
    ``dynamo_frontend_queued_requests`` gauge reads at that moment (started minus first tokens)."""
    return bisect_left(log.arrival_s, at_s) - bisect_left(log.first_token_s, at_s)


def in_flight(log: EventLog, at_s: float) -> int:
    """Requests arrived before ``at_s`` and not finished by then: what the frontend's
    ``dynamo_frontend_inflight_requests`` gauge reads at that moment (started minus finished)."""
    return bisect_left(log.arrival_s, at_s) - bisect_left(log.finish_s, at_s)


def frontend_isl_histogram(isl: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """The frontend's ISL histogram of these prompts, in its own bucket bounds
    (``dynamo_frontend_input_sequence_tokens``): what every simulated frontend reports."""
    return isl_histogram(isl, BUCKETS[promql.ISL])


def window_isl_histogram(log: EventLog, start_s: float, end_s: float) -> tuple[tuple[float, float], ...]:
    """The frontend's ISL histogram over the window (ISL observed with the first token), as the
    bucket counters' increases would give it."""
    f0, f1 = _span(log.first_token_s, start_s, end_s)
    return frontend_isl_histogram(log.first_token_isl[f0:f1])


class SimulatedFrontend:
    """MetricsSource over the simulator: what the frontend's metrics say about the window."""

    def __init__(
        self,
        sim: ClusterSimulator,
        epoch: datetime,
        arrival_s: np.ndarray,
        resolution_s: float = ARRIVAL_COUNT_WINDOW_S,
    ) -> None:
        self.sim = sim
        self.epoch = epoch
        self.arrival_s = arrival_s
        self.resolution_s = resolution_s

    def _seconds(self, when: datetime) -> float:
        return (when - self.epoch).total_seconds()

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        start_s, end_s = self._seconds(window_start), self._seconds(window_end)
        self.sim.advance_to(end_s)
        values = frontend_window(self.sim.event_log(), start_s, end_s)
        m = self.sim.metrics(start_s, end_s)
        # The simulated frontend always answers; zero arrivals is genuine zero traffic.
        return Observation(
            window_start=window_start,
            window_end=window_end,
            num_req=values["num_req"],
            ttft_ms=values["ttft_ms"],
            itl_ms=values["itl_ms"],
            isl=values["isl"],
            osl=values["osl"],
            request_duration_s=values["request_duration_s"],
            current=Replicas(m.prefill_replicas, m.decode_replicas),
            quality="ok",
            arrival_counts=arrival_counts(self.arrival_s, start_s, end_s, self.resolution_s),
            arrival_window_s=self.resolution_s,
            sample_time=window_end,  # the simulator is read at the window end, never late
            isl_histogram=window_isl_histogram(self.sim.event_log(), start_s, end_s),
            queued_requests=float(waiting_for_first_token(self.sim.event_log(), end_s)),
            inflight_requests=float(in_flight(self.sim.event_log(), end_s)),
        )

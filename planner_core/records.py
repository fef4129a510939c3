"""The plain records that flow through one planning cycle.

Observation -> LoadForecast -> Decision -> ScalingOutcome. They are frozen dataclasses of
numbers and strings so that the store, the CLI, the metrics exporter and the Prefect
artifacts all read the same values; none of them recomputes a decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

# The load series that are observed, predicted and stored per interval (request count, mean
# input and output sequence length).
SERIES = ("num_req", "isl", "osl")


def is_missing(value: float | None) -> bool:
    """None and NaN both mean "no data" (never "zero load")."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Replicas:
    """Replica counts of the two pools; ``None`` = the pool is not planned / unknown."""

    prefill: int | None
    decode: int | None


@dataclass(frozen=True)
class Observation:
    """What the frontend reported for the interval [window_start, window_end).

    Latencies are means over the requests finished in the window. Any field may be None when
    the source had no data; ``quality`` names why (``ok``, ``no_data``, ``stale``, ``error``,
    ``partial``) so that zero traffic and a broken scrape are never confused.
    """

    window_start: datetime
    window_end: datetime
    num_req: float | None
    ttft_ms: float | None
    itl_ms: float | None
    isl: float | None
    osl: float | None
    request_duration_s: float | None
    current: Replicas = field(default_factory=lambda: Replicas(None, None))
    quality: str = "ok"
    error: str | None = None
    # Requests per ``arrival_window_s`` sub-window of the interval (the counter read at a fine
    # step): how bursty the traffic was. None = the source cannot tell.
    arrival_counts: tuple[int, ...] | None = None
    arrival_window_s: float = 1.0
    # Requests accepted but still waiting for their first token at the window end, when the
    # frontend exports it (dynamo_frontend_queued_requests); stored (observations.queued_requests).
    queued_requests: float | None = None
    # Requests accepted and not finished at the window end (waiting for prefill, for a decode
    # engine, or decoding), when the frontend exports it (dynamo_frontend_inflight_requests):
    # the decode pool's concurrency now, which the finished requests' OSL shows only minutes
    # later when output lengths grow. Not stored.
    inflight_requests: float | None = None
    # When the newest sample of the request counter was taken, on the source's clock; None =
    # the source cannot tell. The stale-data guard (planner_core.safety) compares it with
    # window_end.
    sample_time: datetime | None = None
    # The window's ISL histogram (requests whose first token came in it), cumulative
    # ``(upper bound, count)`` pairs ending at +Inf, when the source has it: how many prompts are
    # too long for the TTFT SLA (planner_core.feasibility). Not stored.
    isl_histogram: tuple[tuple[float, float], ...] | None = None

    @property
    def interval_s(self) -> float:
        return (self.window_end - self.window_start).total_seconds()

    def has_load(self) -> bool:
        """The request count is present, and so are ISL and OSL unless it is zero.

        Zero requests is a measurement (traffic stopped), not missing data: the means of ISL and
        OSL are undefined then, and the predictors keep their last values for them."""
        if is_missing(self.num_req):
            return False
        return self.num_req == 0 or not any(is_missing(v) for v in (self.isl, self.osl))

    def has_latency(self) -> bool:
        return not any(is_missing(v) for v in (self.ttft_ms, self.itl_ms, self.request_duration_s))


@dataclass(frozen=True)
class SeriesForecast:
    """One predicted series for the next interval: mean and an upper quantile."""

    predictor: str
    value: float
    upper: float
    quantile: float = 0.9
    horizon: int = 1


@dataclass(frozen=True)
class LoadForecast:
    """Predicted load of the next interval."""

    num_req: float
    isl: float
    osl: float
    num_req_upper: float | None = None
    isl_upper: float | None = None
    osl_upper: float | None = None
    predictor: str = "given"
    # Burst patterns to plan for: recent intervals' ``Observation.arrival_counts``; the sizing
    # scales each to the forecast and sizes prefill for the worst. Empty = assume Poisson.
    burst_patterns: tuple[tuple[int, ...], ...] = ()
    burst_window_s: float = 1.0
    # The last observed ISL histogram (``Observation.isl_histogram``): the sizing leaves the
    # share of prompts too long for the TTFT SLA out of the prefill pool. None = unknown.
    isl_histogram: tuple[tuple[float, float], ...] | None = None
    # Requests in flight at the last observed window's end (``Observation.inflight_requests``):
    # the default policy keeps enough decode engines for them. None = unknown.
    inflight_requests: float | None = None
    # Of them, those still waiting for a first token (``Observation.queued_requests``): queued
    # for a prefill engine or for a decode engine's admission. None = unknown.
    queued_requests: float | None = None

    def is_usable(self) -> bool:
        return not any(is_missing(v) for v in (self.num_req, self.isl, self.osl))


@dataclass(frozen=True)
class Corrections:
    """Observed latency over the profile's prediction for the observed load (1.0 = as profiled).

    ``prefill`` = observed TTFT / profiled TTFT at the observed ISL;
    ``decode`` = observed ITL / profiled ITL at the observed per-engine concurrency.
    """

    prefill: float = 1.0
    decode: float = 1.0
    source: str = "none"


NO_CORRECTION = Corrections()


@dataclass(frozen=True)
class Decision:
    """One sizing decision with every number needed to re-derive it by hand."""

    policy: str
    mode: str
    action: str  # "scale" (targets computed from the forecast) or "hold" (keep current)
    reason: str
    # inputs
    interval_s: float
    num_req: float | None
    isl: float | None
    osl: float | None
    ttft_sla_ms: float
    itl_sla_ms: float
    prefill_correction: float
    decode_correction: float
    prefill_correction_applied: float
    decode_correction_applied: float
    # prefill
    prefill_demand_tokens_per_s: float | None = None
    prefill_thpt_per_gpu: float | None = None
    prefill_ttft_ms_profile: float | None = None
    prefill_replicas_unconstrained: int | None = None
    prefill_replicas_after_min: int | None = None
    prefill_replicas_after_cap: int | None = None
    prefill_replicas: int | None = None
    # requests of the planned count whose prompt is too long to meet the TTFT SLA on any
    # number of engines: no TTFT target for them, their prefill time counted in the pool's
    # busy time (planner_core.feasibility)
    prefill_infeasible_num_req: float | None = None
    # decode
    decode_context_length: float | None = None
    decode_itl_target_ms: float | None = None
    decode_thpt_per_gpu: float | None = None
    decode_itl_ms_at_operating_point: float | None = None
    decode_kv_usage_at_operating_point: float | None = None
    decode_sla_reachable: bool | None = None
    decode_demand_tokens_per_s: float | None = None
    decode_replicas_unconstrained: int | None = None
    decode_replicas_after_min: int | None = None
    decode_replicas_after_cap: int | None = None
    decode_replicas: int | None = None
    # budget
    prefill_engine_num_gpu: int = 1
    decode_engine_num_gpu: int = 1
    min_endpoint: int = 1
    max_gpu_budget: int = 0
    gpus_before_budget: int | None = None
    budget_scale: float | None = None
    budget_limited: bool = False
    budget_exceeded: bool = False
    prefill_gpus: int = 0
    decode_gpus: int = 0
    # safety rails (planner_core.safety): the per-cycle scale-down bound, then the data's age
    scale_down_max_percent: float | None = None  # None: the policy has no bound
    prefill_scale_down_floor: int | None = None  # fewest replicas this cycle may ask for
    decode_scale_down_floor: int | None = None
    prefill_replicas_before_scale_down_limit: int | None = None
    decode_replicas_before_scale_down_limit: int | None = None
    scale_down_limited: bool = False
    metrics_age_s: float | None = None  # window end - newest sample (negative: sample after it)
    max_metrics_age_s: float | None = None  # the guard's limit (two adjustment intervals)
    # extra numbers a policy records (planning horizon, quantile used, ...)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_gpus(self) -> int:
        return self.prefill_gpus + self.decode_gpus

    @property
    def targets(self) -> Replicas:
        return Replicas(self.prefill_replicas, self.decode_replicas)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_gpus"] = self.total_gpus
        return out

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class ScalingOutcome:
    """What the connector did with a decision."""

    connector: str
    requested: Replicas
    outcome: str  # "applied", "unchanged", "skipped", "dry_run", "pending", "error"
    requested_at: datetime
    acknowledged_at: datetime | None = None
    error: str | None = None

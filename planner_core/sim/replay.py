"""Closed-loop replay: a real trace, the simulated cluster, and the production planning cycle.

Every interval the same :class:`~planner_core.cycle.PlanningCycle` that the Prefect flow runs
observes the simulated frontend's metrics of the last interval, predicts, sizes, enforces the
budget, hands the targets to the simulated cluster (the virtual connector's outside
environment) and persists everything to the store, on simulated time.

Baselines run on the same requests:

``dynamo``  Dynamo's arithmetic with its default predictor (ARIMA).
``dynamo-tuned``  Dynamo's arithmetic as a careful user runs it: the constant predictor, the
            config's ``prefill_throughput_factor`` and ``decode_target_factor``, decode sized for
            ``max_num_seqs`` (:mod:`planner_core.sim.baselines` picks the knobs in hindsight).
``static``  fixed replicas sized (with Dynamo's arithmetic on the actual load) for the trace's
            busiest interval, running from the start; or the ``fixed`` replicas given
            (:mod:`planner_core.sim.baselines` searches the fewest that reach a target).
``oracle``  per interval, the fewest replicas that meet the SLA for that interval's actual
            requests with no start-up delay (see ``docs/oracle.md``): a lower bound on GPU-hours.
``clairvoyant``  a diagnostic, not a planner: the ``default`` sizing and cycle, fed the *actual*
            mean request count, ISL and OSL of the intervals its decision serves (the next one
            and, because new workers start after the start-up delay, those until they are
            ready: the highest of each) instead of a forecast. What it misses or over-spends
            is the sizing's share of the gap to the oracle; the rest is forecasting.

Closed-loop policies start from their own sizing of the first interval's actual load, as if
the planner had been running on this traffic before the trace began.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from planner_core.config import PlannerConfig, Policy
from planner_core.connectors.simulated import SimulatedClusterConnector
from planner_core.cycle import CycleResult, PlanningCycle
from planner_core.feasibility import infeasible_mask
from planner_core.metrics.simulated import (
    ARRIVAL_COUNT_WINDOW_S as ARRIVAL_COUNT_WINDOW_S,  # the mocker engine ticks at it
)
from planner_core.metrics.simulated import SimulatedFrontend, arrival_counts, frontend_isl_histogram
from planner_core.policies import policy_for
from planner_core.ports import MetricsSource, SimulatedClock
from planner_core.profiles import Profile, load_profile
from planner_core.records import LoadForecast, Observation, Replicas
from planner_core.sim.cluster import ClusterSimulator
from planner_core.sim.oracle import oracle_replicas
from planner_core.sim.workload import DEFAULT_COPY_JITTER_S
from planner_core.sizing import size

POLICIES = ("default", "dynamo", "dynamo-tuned", "static", "oracle", "clairvoyant")
DYNAMO_PREDICTOR = "arima"
TUNED_PREDICTOR = "constant"  # dynamo-tuned: the last interval's load, no model to fit
DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    """Requests to replay: arrival seconds from the start, ISL and OSL per request."""

    arrival_s: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    name: str
    start: datetime = DEFAULT_EPOCH

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if self.arrival_s.size else 0.0

    def __len__(self) -> int:
        return int(self.arrival_s.size)


class ClairvoyantPredictor:
    """LoadPredictorPort that reads the workload's future: the actual means of the intervals a
    decision made at the end of the observed window serves (see ``clairvoyant`` above)."""

    name = "clairvoyant"

    def __init__(self, workload: Workload, interval_s: float, startup_s: float) -> None:
        self.workload = workload
        self.interval_s = interval_s
        self.intervals_ahead = 1 + math.ceil(max(startup_s, 0.0) / interval_s)
        self._end_s: float | None = None

    def observe(self, obs: Observation) -> None:
        self._end_s = (obs.window_end - self.workload.start).total_seconds()

    def predict(self) -> LoadForecast:
        if self._end_s is None:
            return LoadForecast(math.nan, math.nan, math.nan, predictor=self.name)
        num_req, isl, osl = 0.0, math.nan, math.nan
        arrival = self.workload.arrival_s
        for k in range(self.intervals_ahead):
            start = self._end_s + k * self.interval_s
            lo, hi = np.searchsorted(arrival, [start, start + self.interval_s])
            if hi > lo:
                num_req = max(num_req, float(hi - lo))
                isl = float(np.fmax(isl, self.workload.isl[lo:hi].mean()))
                osl = float(np.fmax(osl, self.workload.osl[lo:hi].mean()))
        if num_req == 0.0:  # an idle stretch: the sizing plans min_endpoint
            isl, osl = float(self.workload.isl.mean()), float(self.workload.osl.mean())
        return LoadForecast(num_req, isl, osl, num_req, isl, osl, predictor=self.name)

    def get_state(self) -> dict[str, Any]:
        return {}


@dataclass
class ReplayResult:
    policy: str
    predictor: str | None
    requests: int
    sla_attainment: float  # over all requests
    feasible_sla_attainment: float  # over requests whose unloaded latency meets the SLA
    infeasible_requests: int  # the others: no replica count can serve them within the SLA
    ttft_attainment: float
    itl_attainment: float
    p50_ttft_ms: float
    p99_ttft_ms: float
    p50_itl_ms: float
    p99_itl_ms: float
    gpu_hours: float
    oracle_gpu_hours: float
    prefill_gpu_hours: float
    decode_gpu_hours: float
    oracle_prefill_gpu_hours: float
    oracle_decode_gpu_hours: float
    scaling_actions: int
    wall_s: float
    intervals: int
    unfinished: int
    # decode preemptions (paged KV, our engine; None where the engine does not report them)
    preemptions: int | None = None
    # the knob setting a hindsight baseline chose (dynamo-tuned's grid point, static-best's replicas)
    setting: str | None = None
    # per interval series for the report
    timeline: dict[str, list[Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "timeline"}
        out["gpu_hours_vs_oracle"] = self.gpu_hours / self.oracle_gpu_hours if self.oracle_gpu_hours else None
        return out


def load_workload(
    path: str | Path,
    load_scale: float = 1.0,
    seed: int = 0,
    duration_s: float | None = None,
    max_requests: int | None = None,
    copy_jitter_s: float = DEFAULT_COPY_JITTER_S,
    speed_up: float = 1.0,
) -> Workload:
    """Requests to replay from any supported trace.

    Per-request traces (Azure CSV, Mooncake JSONL) are used as they are; a ServeGen aggregate
    rate curve becomes Poisson arrivals at its rate with (ISL, OSL) pairs drawn from the bundled
    Azure conversation trace and rescaled per window to the curve's mean lengths (ServeGen
    publishes no per-request lengths here; see :func:`~planner_core.traces.requests_from_rate_curve`).
    ``speed_up`` compresses time (inter-arrival times divided by it);
    ``duration_s`` then keeps only the first seconds of the replay; ``load_scale`` multiplies the
    arrival rate while keeping the shape: a per-request trace's requests are copied, each copy
    shifted within ``copy_jitter_s`` (see :mod:`planner_core.sim.workload`); a rate curve's rate
    is multiplied before the Poisson draw (independent users exactly; ``copy_jitter_s`` unused).
    """
    from planner_core.config import BUNDLED_TRACE
    from planner_core.sim.workload import load_scale as scale_load
    from planner_core.sim.workload import speed_up as compress
    from planner_core.traces import (
        TraceError,
        detect_format,
        expected_requests,
        read_rate_curve,
        read_trace,
        requests_from_rate_curve,
    )

    path = Path(path)
    if detect_format(path) == "servegen_aggregate":
        curve = read_rate_curve(path)
        start = float(curve.window_start_s[0])
        end = start + duration_s * speed_up if duration_s is not None else None
        expected = expected_requests(curve, start, end) * load_scale
        if max_requests is not None and expected > max_requests:
            raise TraceError(
                f"{path}: --load-scale {load_scale:g} would replay about {expected:,.0f} requests, "
                f"more than the {max_requests:,} a replay holds in memory; lower --load-scale or --duration-s"
            )
        trace = requests_from_rate_curve(
            curve,
            read_trace(BUNDLED_TRACE),
            seed,
            start_s=start,
            end_s=end,
            rate_scale=load_scale,
            match_mean_lengths=True,
        )
        load_scale = 1.0  # already in the rate
    else:
        trace = read_trace(path)
    arrival, isl, osl = trace.arrival_s, trace.isl, trace.osl
    if speed_up != 1.0:
        arrival = compress(arrival, speed_up)
    if duration_s is not None:
        keep = arrival < duration_s
        arrival, isl, osl = arrival[keep], isl[keep], osl[keep]
    if max_requests is not None and len(arrival) * load_scale > max_requests:
        raise TraceError(
            f"{path}: --load-scale {load_scale:g} would replay about {len(arrival) * load_scale:,.0f} requests, "
            f"more than the {max_requests:,} a replay holds in memory; lower --load-scale or --duration-s"
        )
    if load_scale != 1.0:
        arrival, isl, osl = scale_load(arrival, isl, osl, load_scale, seed, copy_jitter_s)
    start_time = datetime.fromtimestamp(trace.origin_s, UTC) if trace.origin_s else DEFAULT_EPOCH
    return Workload(
        np.asarray(arrival, dtype=np.float64),
        np.asarray(isl, dtype=np.float64),
        np.asarray(osl, dtype=np.float64),
        path.stem,
        start_time,
    )


def _percentile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, q)) if finite.size else float("nan")


def score(sim: ClusterSimulator, config: PlannerConfig) -> dict[str, float]:
    """Per-request SLA attainment and latency percentiles; unfinished requests miss the SLA."""
    res = sim.results()
    infeasible = infeasible_mask(sim.profile, res.isl, res.osl, config.ttft_ms, config.itl_ms)
    return score_requests(np.asarray(res.ttft_ms), np.asarray(res.itl_ms), infeasible, config)


def score_requests(
    ttft: np.ndarray, itl: np.ndarray, infeasible: np.ndarray, config: PlannerConfig
) -> dict[str, float]:
    """The scores of one replay from per-request TTFT and mean ITL (ms; NaN = not finished) and
    the infeasible mask (:func:`planner_core.feasibility.infeasible_mask`), on either engine.
    ``sla_attainment`` is over all requests, ``feasible_sla_attainment`` over those whose
    unloaded latency meets the SLA (1.0 when there is none)."""
    n = ttft.size
    ttft_ok = np.isfinite(ttft) & (ttft <= config.ttft_ms)
    itl_ok = np.isfinite(itl) & (itl <= config.itl_ms)
    met = ttft_ok & itl_ok
    feasible = ~np.asarray(infeasible, dtype=bool)
    return {
        "requests": n,
        "sla_attainment": float(np.mean(met)) if n else 1.0,
        "feasible_sla_attainment": float(np.mean(met[feasible])) if feasible.any() else 1.0,
        "infeasible_requests": int(n - int(feasible.sum())),
        "ttft_attainment": float(np.mean(ttft_ok)) if n else 1.0,
        "itl_attainment": float(np.mean(itl_ok)) if n else 1.0,
        "p50_ttft_ms": _percentile(ttft, 50),
        "p99_ttft_ms": _percentile(ttft, 99),
        "p50_itl_ms": _percentile(itl, 50),
        "p99_itl_ms": _percentile(itl, 99),
        "unfinished": int(np.sum(~np.isfinite(ttft) | ~np.isfinite(itl))),
    }


def compute_oracle(workload: Workload, profile: Profile, config: PlannerConfig) -> list[Replicas]:
    return oracle_replicas(
        profile,
        workload.arrival_s,
        workload.isl,
        workload.osl,
        interval_s=float(config.adjustment_interval_s),
        ttft_ms=config.ttft_ms,
        itl_ms=config.itl_ms,
        prefill_engine_num_gpu=config.prefill_engine_num_gpu,
        decode_engine_num_gpu=config.decode_engine_num_gpu,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
    )


def oracle_gpu_hours(plan: Sequence[Replicas], config: PlannerConfig) -> float:
    per_interval_gpus = [
        (r.prefill or 0) * config.prefill_engine_num_gpu + (r.decode or 0) * config.decode_engine_num_gpu for r in plan
    ]
    return sum(per_interval_gpus) * config.adjustment_interval_s / 3600.0


def static_replicas(workload: Workload, profile: Profile, config: PlannerConfig) -> Replicas:
    """Dynamo's arithmetic on the busiest interval's actual load, held all along."""
    interval = float(config.adjustment_interval_s)
    bins = np.floor(workload.arrival_s / interval).astype(np.int64)
    counts = np.bincount(bins)
    peak = int(np.argmax(counts))
    in_peak = bins == peak
    forecast = LoadForecast(
        float(counts[peak]), float(workload.isl[in_peak].mean()), float(workload.osl[in_peak].mean())
    )
    static_config = config.model_copy(update={"policy": Policy.DYNAMO})
    return size(forecast, profile, static_config).targets


def _simulator(
    workload: Workload,
    profile: Profile,
    config: PlannerConfig,
    initial: Replicas,
    startup_s: float,
    kv_admission: str = "paged",
) -> ClusterSimulator:
    return ClusterSimulator(
        profile,
        workload.arrival_s,
        workload.isl,
        workload.osl,
        prefill_engine_num_gpu=config.prefill_engine_num_gpu,
        decode_engine_num_gpu=config.decode_engine_num_gpu,
        initial=initial,
        startup_s=startup_s,
        kv_admission=kv_admission,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
    )


def first_interval_replicas(
    workload: Workload, profile: Profile, config: PlannerConfig, startup_s: float = 0.0
) -> Replicas:
    """What the policy itself would run for the trace's first intervals: the replay starts as if
    the planner had been running on this traffic before the trace began, so it starts sized for
    the intervals its first decision cannot change (the first, and those until a worker it adds
    is ready after ``startup_s``): the highest count and means of each, as ``clairvoyant`` sizes,
    and their prompt lengths' histogram.

    Without this, a trace whose window opens on a ramp (Azure conv: 1,900 requests in its first
    minute at x10, 2,650 in its second) scores the replay's cold start, the same for every
    policy, rather than its planning: a planner that had been running would have been sized
    for the load around the start."""
    interval = float(config.adjustment_interval_s)
    ahead = 1 + math.ceil(max(startup_s, 0.0) / interval)
    num_req, isl, osl, patterns = 0.0, math.nan, math.nan, []
    for k in range(ahead):
        lo, hi = np.searchsorted(workload.arrival_s, [k * interval, (k + 1) * interval])
        if hi > lo:
            num_req = max(num_req, float(hi - lo))
            isl = float(np.fmax(isl, workload.isl[lo:hi].mean()))
            osl = float(np.fmax(osl, workload.osl[lo:hi].mean()))
            counts = arrival_counts(workload.arrival_s, k * interval, (k + 1) * interval, config.arrival_resolution_s)
            if counts:
                patterns.append(counts)
    if num_req == 0.0:
        return Replicas(config.min_endpoint, config.min_endpoint)
    # and the share of prompts too long for the TTFT SLA, as the frontend's ISL histogram tells the
    # planner every interval (the Mooncake trace's 40 %: without it the pool starts 9 engines short)
    span = slice(0, int(np.searchsorted(workload.arrival_s, ahead * interval)))
    observed = LoadForecast(
        num_req,
        isl,
        osl,
        burst_patterns=tuple(patterns),
        burst_window_s=config.arrival_resolution_s,
        isl_histogram=frontend_isl_histogram(workload.isl[span].tolist()),
    )
    return size(observed, profile, config).targets


def run_policy(
    workload: Workload,
    config: PlannerConfig,
    policy: str,
    *,
    startup_s: float = 60.0,
    store: Any = None,
    oracle_plan: Sequence[Replicas] | None = None,
    profile: Profile | None = None,
    progress: Callable[[int, int], None] | None = None,
    deployment_name: str | None = None,
    frontend: str = "direct",
    kv_admission: str = "paged",
    fixed: Replicas | None = None,
    dynamo_refit_every: int = 1,
    stop_below: float | None = None,
) -> ReplayResult:
    """Replay ``workload`` under one policy and score it: ``oracle`` and ``static`` open loop
    (:func:`replay_open_loop`), the planners closed loop (:func:`replay_closed_loop`).

    ``frontend`` (closed loop): ``direct`` reads the simulated frontend's window values straight
    from the simulator; ``exporter`` goes through the frontend exporter, a scrape every
    ``--arrival-resolution-s`` and the Prometheus source's queries (same decisions, slower).
    ``kv_admission``: the simulated decode engines' KV admission, ``paged`` or ``reserve``
    (:class:`~planner_core.sim.cluster.ClusterSimulator`). ``fixed``: the replicas ``static``
    holds (default :func:`static_replicas`). ``dynamo_refit_every``: the ``dynamo`` policy's
    ARIMA order search every this many intervals (1, Dynamo's own, by default; a day-long
    replay takes 25, as our ``arima`` predictor does, since one search per interval costs about
    two seconds: the parameters are still re-filtered on the newest window every interval).
    ``stop_below`` (``static`` only): stop (checked every ``STOP_CHECK_INTERVALS`` intervals) once
    the replay's feasible attainment can no longer reach this; the result then scores only what
    ran (unfinished requests miss), so it is below ``stop_below`` as the full replay's would be,
    and its other numbers are partial. For hindsight searches that only need to know that a pair
    fails."""
    if policy not in POLICIES:
        raise ValueError(f"policy: unknown {policy!r}; choose from {', '.join(POLICIES)}")
    profile = profile or load_profile(config.profile_dir())
    interval = float(config.adjustment_interval_s)
    started = time.perf_counter()
    plan = list(oracle_plan) if oracle_plan is not None else compute_oracle(workload, profile, config)
    n_intervals = max(1, math.ceil(workload.duration_s / interval))
    # Row k describes interval k: its start, observed load and latency, the forecast made for
    # it, the replicas requested for it, and the oracle's replicas for it.
    timeline: dict[str, list[Any]] = {key: [None] * n_intervals for key in TIMELINE_KEYS}
    timeline["start_s"] = [k * interval for k in range(n_intervals)]
    timeline["oracle_prefill"] = [plan[k].prefill if k < len(plan) else None for k in range(n_intervals)]
    timeline["oracle_decode"] = [plan[k].decode if k < len(plan) else None for k in range(n_intervals)]
    predictor_name: str | None = None
    stopped = False
    if policy in OPEN_LOOP_POLICIES:
        sim, actions, stopped = replay_open_loop(
            workload, profile, config, policy, plan, timeline, startup_s, progress, kv_admission, fixed, stop_below
        )
    else:
        config, predictor, predictor_name = closed_loop_setup(workload, config, policy, startup_s, dynamo_refit_every)
        sim, actions = replay_closed_loop(
            workload,
            profile,
            config,
            policy,
            predictor,
            timeline,
            startup_s,
            store,
            deployment_name,
            progress,
            frontend,
            kv_admission,
        )
    # Let in-flight requests finish with the last replicas so every request is scored.
    if not stopped:
        sim.advance_to(math.inf)
    return _result(sim, config, policy, predictor_name, plan, actions, n_intervals, timeline, started)


OPEN_LOOP_POLICIES = ("oracle", "static")
# a static replay with a stop_below checks its misses this often (hourly at a 60 s interval): a
# check turns the per-request lists into arrays, so every interval would cost more than it saves
STOP_CHECK_INTERVALS = 60


def replay_open_loop(
    workload: Workload,
    profile: Profile,
    config: PlannerConfig,
    policy: str,
    plan: Sequence[Replicas],
    timeline: dict[str, list[Any]],
    startup_s: float,
    progress: Callable[[int, int], None] | None = None,
    kv_admission: str = "paged",
    fixed: Replicas | None = None,
    stop_below: float | None = None,
) -> tuple[ClusterSimulator, int, bool]:
    """Replicas fixed in advance, nothing observed: ``oracle`` sets each interval's ``plan`` at
    its start (ready at once), ``static`` runs ``fixed`` (default :func:`static_replicas`) all
    along. Returns the simulator, the number of scaling actions and whether it stopped early
    (``stop_below``: see :func:`run_policy`)."""
    interval = float(config.adjustment_interval_s)
    n_intervals = len(timeline["start_s"])
    if policy == "oracle":
        first = plan[0] if plan else Replicas(config.min_endpoint, config.min_endpoint)
        initial = Replicas(max(first.prefill or 0, config.min_endpoint), max(first.decode or 0, config.min_endpoint))
        sim = _simulator(workload, profile, config, initial, 0.0, kv_admission)
    else:
        held = fixed if fixed is not None else static_replicas(workload, profile, config)
        sim = _simulator(workload, profile, config, held, startup_s, kv_admission)
    counted: np.ndarray | None = None
    if stop_below is not None and policy == "static":
        isl, osl = np.maximum(workload.isl, 0.0), np.maximum(workload.osl, 1.0)  # as the simulator clips them
        counted = ~infeasible_mask(profile, isl, osl, config.ttft_ms, config.itl_ms)
        feasible = int(np.count_nonzero(counted))
    actions = 0
    for k in range(n_intervals):
        if policy == "oracle" and k < len(plan):
            before = sim.replicas()
            sim.set_targets(plan[k])
            if (plan[k].prefill, plan[k].decode) != (before["prefill"]["target"], before["decode"]["target"]):
                actions += 1
        sim.advance_to((k + 1) * interval)
        m = sim.metrics(k * interval, (k + 1) * interval)
        r = sim.replicas()
        _record(
            timeline,
            k,
            num_req=m.num_req,
            ttft_ms=m.ttft_ms,
            itl_ms=m.itl_ms,
            prefill_target=r["prefill"]["target"],
            decode_target=r["decode"]["target"],
        )
        if progress:
            progress(k + 1, n_intervals)
        if counted is not None and stop_below is not None and (k + 1) % STOP_CHECK_INTERVALS == 0 and feasible:
            # the best the full replay can score: every feasible request not missed yet meets the SLA
            missed = sim.missed_by_now(config.ttft_ms, config.itl_ms, counted)
            if (feasible - missed) / feasible < stop_below:
                return sim, actions, True
    return sim, actions, False


class ReplayError(RuntimeError):
    """A replay could not run every planning cycle; its score would be wrong."""


def replay_deployment_name(trace_name: str, policy: str) -> str:
    """A deployment name of its own for every replay run: two replays into one database never
    share a deployment's rows, predictor state or cycle lock."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"replay-{trace_name}-{policy}-{stamp}-{uuid.uuid4().hex[:8]}"


def closed_loop_setup(
    workload: Workload, config: PlannerConfig, policy: str, startup_s: float, dynamo_refit_every: int = 1
) -> tuple[PlannerConfig, Any, str]:
    """The config, load predictor and predictor name a closed-loop policy (``default``,
    ``dynamo``, ``dynamo-tuned``, ``clairvoyant``) runs the production cycle with, on either replay engine."""
    from planner_core.predictors import LoadPredictor

    if policy == "dynamo":
        config = config.model_copy(update={"policy": Policy.DYNAMO, "load_predictor": DYNAMO_PREDICTOR})
    elif policy == "dynamo-tuned":
        config = config.model_copy(update={"policy": Policy.DYNAMO_TUNED, "load_predictor": TUNED_PREDICTOR})
    elif policy == "clairvoyant":
        # It knows whether traffic returns after an idle minute: no cooldown to wait out.
        config = config.model_copy(update={"policy": Policy.DEFAULT, "idle_cooldown_s": 0})
    else:
        config = config.model_copy(update={"policy": Policy.DEFAULT})
    if policy == "clairvoyant":
        return config, ClairvoyantPredictor(workload, float(config.adjustment_interval_s), startup_s), "clairvoyant"
    # Simulated time: a background ARIMA search would finish long before the next interval, so
    # run it inline (deterministic). The dynamo baseline refits at every prediction, as Dynamo does
    # (unless ``dynamo_refit_every`` says otherwise).
    predictor = LoadPredictor(
        config, synchronous_refit=True, **({"refit_every": dynamo_refit_every} if policy == "dynamo" else {})
    )
    return config, predictor, config.load_predictor


def replay_cycle(
    profile: Profile,
    config: PlannerConfig,
    *,
    metrics: MetricsSource,
    connector: Any,
    clock: SimulatedClock,
    predictor: Any,
    store: Any,
    deployment_name: str,
    remembered: Replicas | None = None,
) -> PlanningCycle:
    """The production :class:`PlanningCycle` a closed-loop replay runs, on either engine: its
    simulated deployment ``deployment_name`` in ``store`` when given, and a stabiliser that
    remembers ``remembered`` (the replicas the replay starts with) at the clock's start as the
    last recommendation of the planner running before the trace."""
    deployment_id = None
    if store is not None:
        deployment_id = store.ensure_deployment(
            deployment_name,
            config.namespace,
            config.model_name,
            config.backend.value,
            config.mode.value,
            simulated=True,
        )
    stabilizer = PlanningCycle.default_stabilizer(config)
    if stabilizer is not None and remembered is not None:
        stabilizer.remember([(clock.now(), remembered.prefill, remembered.decode)])
    return PlanningCycle(
        config=config,
        profile=profile,
        metrics=metrics,
        connector=connector,
        clock=clock,
        predictor=predictor,
        store=store,
        deployment_id=deployment_id,
        stabilizer=stabilizer,
        trigger="replay",
    )


def replay_closed_loop(
    workload: Workload,
    profile: Profile,
    config: PlannerConfig,
    policy: str,
    predictor: Any,
    timeline: dict[str, list[Any]],
    startup_s: float,
    store: Any = None,
    deployment_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    frontend: str = "direct",
    kv_admission: str = "paged",
) -> tuple[ClusterSimulator, int]:
    """The production :class:`PlanningCycle` (with ``predictor``, from :func:`closed_loop_setup`)
    every interval on simulated time: it observes the
    simulated frontend, predicts, sizes and scales the simulated cluster (and persists to
    ``store`` when given). Returns the simulator and the number of applied scaling actions.
    ``frontend``: see :func:`run_policy`."""
    interval = float(config.adjustment_interval_s)
    n_intervals = len(timeline["start_s"])
    initial = first_interval_replicas(workload, profile, config, startup_s)
    sim = _simulator(workload, profile, config, initial, startup_s, kv_admission)
    clock = SimulatedClock(workload.start)
    cycle = replay_cycle(
        profile,
        config,
        metrics=replay_frontend(frontend, sim, workload, config),
        connector=SimulatedClusterConnector(sim),
        clock=clock,
        predictor=predictor,
        store=store,
        deployment_name=deployment_name or replay_deployment_name(workload.name, policy),
        remembered=initial,
    )
    running = sim.replicas()
    _record(timeline, 0, prefill_target=running["prefill"]["target"], decode_target=running["decode"]["target"])
    actions = 0
    check_s = policy_for(config.policy).queue_check_interval_s(config)
    for k in range(n_intervals):
        # Between cycles, the queue checks (planner_core.surge) at their own period.
        for t in queue_check_times(k * interval, (k + 1) * interval, check_s):
            clock.set(workload.start + timedelta(seconds=t))
            checked = cycle.check_queue()
            if checked is not None and checked.outcome is not None and checked.outcome.outcome == "applied":
                actions += 1
        clock.set(workload.start + timedelta(seconds=(k + 1) * interval))
        result: CycleResult = cycle.run()
        if result.status in ("skipped_locked", "error"):
            # The simulated cluster would keep its replicas for this interval and the score
            # would be silently wrong: stop instead.
            raise ReplayError(
                f"replay {policy}: the planning cycle of interval {k + 1}/{n_intervals} "
                f"ended {result.status} ({result.error}); the replay's score would be wrong"
            )
        if result.outcome is not None and result.outcome.outcome == "applied":
            actions += 1
        obs, forecast, decision = result.observation, result.forecast, result.decision
        if obs is not None:
            _record(timeline, k, num_req=obs.num_req, ttft_ms=obs.ttft_ms, itl_ms=obs.itl_ms)
        if k + 1 < n_intervals:
            _record(
                timeline,
                k + 1,
                predicted_num_req=forecast.num_req if forecast and forecast.is_usable() else None,
                prefill_target=decision.prefill_replicas if decision else None,
                decode_target=decision.decode_replicas if decision else None,
            )
        if progress:
            progress(k + 1, n_intervals)
    return sim, actions


def queue_check_times(start_s: float, end_s: float, period_s: float) -> list[float]:
    """The queue checks strictly inside an interval (the cycle itself runs at its end)."""
    if period_s <= 0:
        return []
    n = math.ceil((end_s - start_s) / period_s)
    return [start_s + i * period_s for i in range(1, n) if start_s + i * period_s < end_s - 1e-9]


def _result(
    sim: ClusterSimulator,
    config: PlannerConfig,
    policy: str,
    predictor_name: str | None,
    plan: Sequence[Replicas],
    actions: int,
    n_intervals: int,
    timeline: dict[str, list[Any]],
    started: float,
) -> ReplayResult:
    scores = score(sim, config)
    gpu_seconds = sim.gpu_seconds()
    return scored_result(
        policy,
        predictor_name,
        scores,
        gpu_seconds["prefill"],
        gpu_seconds["decode"],
        config,
        plan,
        actions,
        n_intervals,
        timeline,
        started,
        preemptions=sim.preemptions,
    )


def scored_result(
    policy: str,
    predictor: str | None,
    scores: dict[str, float],
    prefill_gpu_s: float,
    decode_gpu_s: float,
    config: PlannerConfig,
    plan: Sequence[Replicas],
    actions: int,
    n_intervals: int,
    timeline: dict[str, list[Any]],
    started: float,
    preemptions: int | None = None,
) -> ReplayResult:
    """One :class:`ReplayResult` from an engine's scores and GPU-seconds (both engines use it)."""
    return ReplayResult(
        policy=policy,
        predictor=predictor,
        requests=int(scores["requests"]),
        sla_attainment=scores["sla_attainment"],
        feasible_sla_attainment=scores["feasible_sla_attainment"],
        infeasible_requests=int(scores["infeasible_requests"]),
        ttft_attainment=scores["ttft_attainment"],
        itl_attainment=scores["itl_attainment"],
        p50_ttft_ms=scores["p50_ttft_ms"],
        p99_ttft_ms=scores["p99_ttft_ms"],
        p50_itl_ms=scores["p50_itl_ms"],
        p99_itl_ms=scores["p99_itl_ms"],
        gpu_hours=(prefill_gpu_s + decode_gpu_s) / 3600.0,
        oracle_gpu_hours=oracle_gpu_hours(plan, config),
        prefill_gpu_hours=prefill_gpu_s / 3600.0,
        decode_gpu_hours=decode_gpu_s / 3600.0,
        oracle_prefill_gpu_hours=oracle_gpu_hours([Replicas(r.prefill, 0) for r in plan], config),
        oracle_decode_gpu_hours=oracle_gpu_hours([Replicas(0, r.decode) for r in plan], config),
        scaling_actions=actions,
        wall_s=time.perf_counter() - started,
        intervals=n_intervals,
        unfinished=int(scores["unfinished"]),
        preemptions=preemptions,
        timeline=timeline,
    )


def replay_frontend(frontend: str, sim: ClusterSimulator, workload: Workload, config: PlannerConfig) -> MetricsSource:
    """The replay's MetricsSource at the configured arrival resolution (see ``run_policy``)."""
    if frontend == "exporter":
        from planner_core.metrics.exporter import ExporterFrontend

        return ExporterFrontend(sim, workload.start, config.arrival_resolution_s, config.model_name, config.namespace)
    if frontend != "direct":
        raise ValueError(f"frontend: unknown {frontend!r}; choose direct or exporter")
    return SimulatedFrontend(sim, workload.start, workload.arrival_s, config.arrival_resolution_s)


TIMELINE_KEYS = (
    "start_s",
    "num_req",
    "predicted_num_req",
    "prefill_target",
    "decode_target",
    "ttft_ms",
    "itl_ms",
    "oracle_prefill",
    "oracle_decode",
)


def _record(timeline: dict[str, list[Any]], k: int, **values: Any) -> None:
    for key, value in values.items():
        timeline[key][k] = value

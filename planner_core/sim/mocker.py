"""A second replay engine: Dynamo 1.6.1's mocker (``ai-dynamo-runtime``, the optional ``mocker`` extra).

The mocker is a discrete-event simulator of vLLM-style engines written by the Dynamo team:
batched and chunked prefill (``max_num_batched_tokens``), a cap on running sequences
(``max_num_seqs``), paged KV with LIFO preemption, worker start-up, and its own router. Our
replay (:mod:`planner_core.sim.replay`) runs the same requests through our simulator; this
module runs them through the mocker, with the *same* production planning cycle in its closed
loop, so that a claim about planning quality does not rest on one simulator we wrote.

How one replay runs (``docs/mocker.md`` has the details and the measured call shapes):

* the profile becomes the mocker's ``dynamo_profile`` npz by our own interpolation
  (:func:`write_perf_npz`);
* the workload becomes a Mooncake JSONL trace whose requests share no ``hash_ids`` (prefix
  caching off, as our simulator has none) (:func:`write_mooncake_trace`);
* :class:`CycleScalingPolicy` is the mocker's external scaling policy. The mocker calls it
  every second of simulated time with a snapshot whose ``traffic`` holds that second's arrivals
  (the frontend's request counter read at a 1 s step) and latency means; at every adjustment
  interval it runs :class:`~planner_core.cycle.PlanningCycle` with a
  :class:`MockerFrontend` (MetricsSource over those per-second records) and a
  :class:`MockerConnector` (records the targets), and hands the targets back to the mocker;
* the report's per-request records are scored like our engine (``replay.score_requests``), and
  GPU-hours come from the report's worker lifecycle operations (:func:`worker_seconds`).

``dynamo-1.6-sla`` and ``dynamo-1.6-throughput`` run Dynamo 1.6.1's own planner in the same
loop through its replay entry point (``dynamo.replay.run_trace_replay``, from the ``ai-dynamo``
wheel); see :func:`run_dynamo16`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from planner_core.config import PlannerConfig, Policy
from planner_core.cycle import PlanningCycle
from planner_core.feasibility import infeasible_mask
from planner_core.metrics.simulated import arrival_counts, frontend_isl_histogram
from planner_core.policies import policy_for
from planner_core.ports import DeploymentInfo, SimulatedClock
from planner_core.profiles import Profile, load_profile
from planner_core.records import Observation, Replicas, ScalingOutcome
from planner_core.sim.replay import (
    ARRIVAL_COUNT_WINDOW_S,
    POLICIES,
    TIMELINE_KEYS,
    ReplayError,
    ReplayResult,
    Workload,
    _record,
    closed_loop_setup,
    compute_oracle,
    first_interval_replicas,
    replay_cycle,
    replay_deployment_name,
    score_requests,
    scored_result,
    static_replicas,
)

DYNAMO16_POLICIES = ("dynamo-1.6-sla", "dynamo-1.6-throughput")
MOCKER_POLICIES = (*POLICIES, *DYNAMO16_POLICIES)
INSTALL_HINT = "install the optional extra: pip install -e '.[mocker]' (Dynamo 1.6.1's ai-dynamo-runtime)"
DYNAMO16_INSTALL_HINT = "run scripts/install-dynamo-planner.sh (ai-dynamo 1.6.1 without its serving dependencies)"
TICK_MS = ARRIVAL_COUNT_WINDOW_S * 1000.0


class MockerUnavailable(RuntimeError):
    """The optional mocker (or Dynamo 1.6.1's planner) is not installed; the message says how to install it."""


def _quiet_dynamo_logs() -> None:
    """Dynamo's KV router logs every worker it selects at INFO, two lines a request: a replay's
    output flooded and its wall time up by about 40 %. Its logging reads ``DYN_LOG`` once, when
    ``dynamo._core`` is first imported; an explicit ``DYN_LOG`` wins."""
    os.environ.setdefault("DYN_LOG", "warn")


def mocker_available() -> bool:
    _quiet_dynamo_logs()
    try:
        import dynamo._core as core
    except ImportError:
        return False
    return hasattr(core, "run_mocker_trace_replay")


def _core() -> Any:
    _quiet_dynamo_logs()
    try:
        import dynamo._core as core
    except ImportError as exc:
        raise MockerUnavailable(f"the mocker engine needs Dynamo's mocker: {INSTALL_HINT}") from exc
    return core


# The mocker's two routers (``run_mocker_trace_replay(router_mode=...)``): ``kv_router`` is Dynamo's
# KV router, the frontend's ``--router-mode kv`` that Dynamo's router guide gives for disaggregated
# serving in production (each request to the worker with the least projected load: queued prefill
# tokens on prefill, active KV blocks on decode; with no prefix reuse, as here, no overlap term);
# ``round_robin`` is the frontend's bare default (``--router-mode round-robin``), "the simplest
# baseline" in that guide, and the mocker's own default. docs/mocker.md, "Routing".
RouterMode = Literal["kv_router", "round_robin"]
ROUTER_MODES: tuple[RouterMode, ...] = get_args(RouterMode)


@dataclass(frozen=True)
class MockerEngine:
    """Engine settings handed to every mocker worker. The defaults are the mocker's own (vLLM's),
    except the router: Dynamo's KV router, what a disaggregated deployment runs (:data:`ROUTER_MODES`)."""

    block_size: int = 64
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    enable_chunked_prefill: bool = True
    router_mode: RouterMode = "kv_router"

    def __post_init__(self) -> None:
        if self.router_mode not in ROUTER_MODES:
            raise ValueError(f"router_mode: unknown {self.router_mode!r}; choose {' or '.join(ROUTER_MODES)}")


# ---------------------------------------------------------------------------------------------
# Inputs: profile -> npz, workload -> Mooncake JSONL, engine arguments
# ---------------------------------------------------------------------------------------------


def write_perf_npz(profile: Profile, path: Path, isl_points: int = 256, grid_points: int = 101) -> Path:
    """The mocker's ``dynamo_profile`` timing model from our interpolation of ``profile``.

    * ``prefill_isl`` / ``prefill_ttft_ms``: our PCHIP prefill curve on ``isl_points`` evenly
      spaced ISLs over the profiled range (the mocker looks up a forward pass by its scheduled
      prefill tokens);
    * ``decode_active_kv_tokens`` x ``decode_context_length`` -> ``decode_itl`` (ms): our decode
      surface at KV usage ``active_kv / max_kv_tokens`` and that context, on a
      ``grid_points`` x ``grid_points`` grid from 0 to ``max_kv_tokens`` and from 1 to the largest
      profiled context. The mocker reads active KV tokens and context = active KV / batch size;
      the profile's ``(isl + osl/2)`` accounting is the same on average over a request's life.
    """
    pre, surface = profile.prefill, profile.decode.surface
    isl = np.linspace(pre.min_isl, pre.max_isl, isl_points)
    ttft = np.array([pre.ttft_ms(x) for x in isl])
    max_kv = float(surface.max_kv_tokens)
    kv = np.linspace(0.0, max_kv, grid_points)
    ctx = np.linspace(1.0, float(surface.levels[-1]), grid_points)
    itl = np.array([[surface.itl_ms_at_kv(k / max_kv, c) for c in ctx] for k in kv])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(
            fh,
            prefill_isl=isl,
            prefill_ttft_ms=ttft,
            decode_active_kv_tokens=kv,
            decode_context_length=ctx,
            decode_itl=itl,
        )
    return path


def request_lengths(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Integer ISL and OSL as the mocker receives them (at least one token each)."""
    isl = np.maximum(np.rint(workload.isl), 1).astype(np.int64)
    osl = np.maximum(np.rint(workload.osl), 1).astype(np.int64)
    return isl, osl


def write_mooncake_trace(workload: Workload, path: Path, block_size: int) -> Path:
    """Mooncake JSONL: ``timestamp`` (ms from the start), lengths, and ``hash_ids`` unique to each
    request (one per ``block_size`` tokens), so no request reuses another's KV: prefix caching off."""
    isl, osl = request_lengths(workload)
    next_id = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for t, i, o in zip(workload.arrival_s.tolist(), isl.tolist(), osl.tolist(), strict=True):
            blocks = -(-i // block_size)
            line = {
                "timestamp": round(t * 1000.0, 3),
                "input_length": i,
                "output_length": o,
                "hash_ids": list(range(next_id, next_id + blocks)),
            }
            next_id += blocks
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    return path


# The bundled profile's engines were deployed with this context length; Dynamo 1.6.1's throughput
# loop scales prefill on queued tokens relative to it, and does nothing without one.
PROFILED_MAX_MODEL_LEN = 16384


def engine_args(
    role: str, npz: Path, startup_s: float, profile: Profile, engine: MockerEngine, max_model_len: int
) -> dict[str, Any]:
    """One pool's mocker engine arguments: our profile's timing and KV capacity, prefix caching off."""
    return {
        "engine": {
            "worker_type": role,
            "enable_prefix_caching": False,
            "enable_chunked_prefill": engine.enable_chunked_prefill,
            "block_size": engine.block_size,
            # the profile's KV capacity, in whole blocks
            "num_gpu_blocks": int(profile.decode.max_kv_tokens // engine.block_size),
            "max_num_seqs": engine.max_num_seqs,
            "max_num_batched_tokens": engine.max_num_batched_tokens,
            "max_model_len": int(max_model_len),
            "timing_model": {"type": "external", "provider": "dynamo_profile", "config": {"path": str(npz)}},
        },
        "startup_time": float(startup_s),
    }


@dataclass
class MockerInputs:
    """The files and arguments of one replay, written once per workload and reused by every policy."""

    directory: Path
    trace: Path
    npz: Path
    profile: Profile
    engine: MockerEngine
    max_model_len: int = PROFILED_MAX_MODEL_LEN

    def args(self, role: str, startup_s: float) -> dict[str, Any]:
        return engine_args(role, self.npz, startup_s, self.profile, self.engine, self.max_model_len)


@contextmanager
def mocker_inputs(
    workload: Workload, profile: Profile, engine: MockerEngine | None = None, directory: Path | None = None
) -> Iterator[MockerInputs]:
    engine = engine or MockerEngine()
    with tempfile.TemporaryDirectory(prefix="sla-planner-mocker-") as tmp:
        root = Path(directory or tmp)
        yield MockerInputs(
            root,
            write_mooncake_trace(workload, root / "trace.jsonl", engine.block_size),
            write_perf_npz(profile, root / "perf.npz"),
            profile,
            engine,
            # the profiled context, or more if a request needs it (none is refused)
            max(PROFILED_MAX_MODEL_LEN, int(np.max(np.add(*request_lengths(workload)), initial=0))),
        )


# ---------------------------------------------------------------------------------------------
# The closed loop: the mocker's snapshots -> MetricsSource, targets -> Connector
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tick:
    end_s: float
    isl_sum: float
    osl_sum: float
    shape_count: int
    ttft_sum: float
    ttft_count: int
    itl_sum: float
    itl_count: int
    active: Replicas
    queued: int  # requests waiting for their first token at the tick (waiting_for_first_token)


def waiting_for_first_token(snapshot: dict[str, Any]) -> int:
    """What the frontend's ``dynamo_frontend_queued_requests`` gauge would read at a tick: the
    prompts queued or being prefilled on the prefill workers, and those prefilled and waiting for
    a decode worker to admit them (the first token comes with that admission, as on our engine)."""
    prefill = sum(
        int(w.get("num_queued_prefill") or 0) + int(w.get("num_prefill_requests") or 0)
        for w in snapshot.get("prefill_fpm_snapshots") or ()
    )
    decode = sum(int(w.get("num_queued_decode") or 0) for w in snapshot.get("decode_fpm_snapshots") or ())
    return prefill + decode


class MockerFrontend:
    """MetricsSource over the mocker's per-tick traffic records: what the frontend's metrics
    say about a window, as our engine's :class:`~planner_core.metrics.simulated.SimulatedFrontend`
    reports them.

    * The request count and ``arrival_counts`` (the started counter read every ``resolution_s``,
      the config's ``arrival_resolution_s``: the scrape interval, the step our engine's frontend
      reads it at) come from the trace's arrival times, as on our engine: the frontend counts a
      request when it arrives. The mocker's per-tick ``num_req`` counts it when its event loop
      gets to it, which at a burst is up to a second off (measured: 8 of a burst's 135 requests
      at 30.0-31.0 s in the tick that ends at 30 s), and the planner sizes prefill from those
      counts' bursts.
    * The ISL histogram (the frontend's ``input_sequence_tokens`` buckets, what tells the sizing
      how many prompts no replica count serves within the TTFT SLA) is not in the snapshot
      either: the prompts accepted in the window (ours counts them at their first token).
    * ISL and OSL are means over the requests the mocker finished in the window (its
      ``avg_isl``/``avg_osl`` weighted by ``shape_count``), TTFT and ITL likewise by their counts.
      The request duration is not in the snapshot; it is estimated as
      ``TTFT + ITL * (OSL - 1)``, what a frontend's ``request_duration_seconds`` would read.
    * The requests waiting for a first token (``queued_requests``, what the queue check between
      cycles reads) at the newest tick: :func:`waiting_for_first_token` over the per-worker
      forward-pass snapshots.
    * A window no tick has reached is no data; one the ticks cover only in part is partial."""

    def __init__(
        self,
        epoch: datetime,
        arrival_s: np.ndarray,
        isl: np.ndarray,
        resolution_s: float = ARRIVAL_COUNT_WINDOW_S,
    ) -> None:
        if resolution_s <= 0:
            raise ValueError(f"arrival_resolution_s: {resolution_s:g} s; it must be positive (--arrival-resolution-s)")
        self.epoch = epoch
        self.arrival_s = np.asarray(arrival_s, dtype=float)
        self.isl = np.asarray(isl, dtype=float)
        self.resolution_s = float(resolution_s)
        self.ticks: list[_Tick] = []

    def record(self, snapshot: dict[str, Any]) -> None:
        traffic = snapshot.get("traffic") or {}
        shapes = int(traffic.get("shape_count") or 0)
        ttft_n = int(traffic.get("ttft_count") or 0)
        itl_n = int(traffic.get("itl_count") or 0)
        self.ticks.append(
            _Tick(
                end_s=float(snapshot["now_ms"]) / 1000.0,
                isl_sum=float(traffic.get("avg_isl") or 0.0) * shapes,
                osl_sum=float(traffic.get("avg_osl") or 0.0) * shapes,
                shape_count=shapes,
                ttft_sum=float(traffic.get("avg_ttft_ms") or 0.0) * ttft_n,
                ttft_count=ttft_n,
                itl_sum=float(traffic.get("avg_itl_ms") or 0.0) * itl_n,
                itl_count=itl_n,
                active=Replicas(
                    int(snapshot.get("active_prefill_count", 0)), int(snapshot.get("active_decode_count", 0))
                ),
                queued=waiting_for_first_token(snapshot),
            )
        )

    def window(self, start_s: float, end_s: float) -> list[_Tick]:
        return [t for t in self.ticks if start_s < t.end_s <= end_s + 1e-9]

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        start_s = (window_start - self.epoch).total_seconds()
        end_s = (window_end - self.epoch).total_seconds()
        ticks = self.window(start_s, end_s)
        if not ticks:
            return Observation(window_start, window_end, None, None, None, None, None, None, quality="no_data")
        seen_s = ticks[-1].end_s  # the newest tick: the frontend has seen nothing later
        shapes = sum(t.shape_count for t in ticks)
        ttft_n = sum(t.ttft_count for t in ticks)
        itl_n = sum(t.itl_count for t in ticks)
        isl = sum(t.isl_sum for t in ticks) / shapes if shapes else None
        osl = sum(t.osl_sum for t in ticks) / shapes if shapes else None
        ttft = sum(t.ttft_sum for t in ticks) / ttft_n if ttft_n else None
        itl = sum(t.itl_sum for t in ticks) / itl_n if itl_n else None
        duration = None
        if ttft is not None and itl is not None and osl is not None:
            duration = (ttft + itl * max(osl - 1.0, 0.0)) / 1000.0
        lo, hi = np.searchsorted(self.arrival_s, [start_s, seen_s])
        return Observation(
            window_start=window_start,
            window_end=window_end,
            num_req=float(hi - lo),
            ttft_ms=ttft,
            itl_ms=itl,
            isl=isl,
            osl=osl,
            request_duration_s=duration,
            current=ticks[-1].active,
            quality="ok" if len(ticks) * ARRIVAL_COUNT_WINDOW_S >= end_s - start_s - 1e-9 else "partial",
            arrival_counts=arrival_counts(self.arrival_s, start_s, seen_s, self.resolution_s),
            arrival_window_s=self.resolution_s,
            sample_time=self.epoch + timedelta(seconds=seen_s),
            isl_histogram=frontend_isl_histogram(self.isl[lo:hi].tolist()),
            queued_requests=float(ticks[-1].queued),
        )


class MockerConnector:
    """The virtual connector's outside environment: targets wait here until the policy returns them."""

    name = "mocker"

    def __init__(self, initial: Replicas) -> None:
        self.targets = initial
        self.ready: Replicas | None = None  # the mocker's active workers at the newest tick

    def current_replicas(self) -> Replicas:
        return self.targets

    def ready_replicas(self) -> Replicas:
        return self.ready if self.ready is not None else self.targets

    def rolling_out(self) -> str | None:
        # The mocker starts and drains workers itself; its starting counts are not wired here,
        # so every decision goes through (as before the rollout gate existed).
        return None

    def validate(self) -> DeploymentInfo:
        return DeploymentInfo(None, None, None)

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        before = self.targets
        self.targets = Replicas(
            targets.prefill if targets.prefill is not None else before.prefill,
            targets.decode if targets.decode is not None else before.decode,
        )
        return ScalingOutcome(
            connector=self.name,
            requested=targets,
            outcome="applied" if self.targets != before else "unchanged",
            requested_at=requested_at,
            acknowledged_at=requested_at,
        )


class _TickingPolicy:
    """Ticks every second of simulated time; subclasses decide at each adjustment interval."""

    def __init__(self, frontend: MockerFrontend, initial: Replicas, interval_s: float, n_intervals: int) -> None:
        self.frontend = frontend
        self.targets = initial
        self.interval_s = interval_s
        self.n_intervals = n_intervals
        self.intervals_done = 0
        self.timeline: dict[str, list[Any]] = {key: [None] * n_intervals for key in TIMELINE_KEYS}
        self.timeline["start_s"] = [k * interval_s for k in range(n_intervals)]
        self.actions = 0
        self.progress: Callable[[int, int], None] | None = None

    def initial_tick_ms(self) -> float:
        return TICK_MS

    def on_tick(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        self.frontend.record(snapshot)
        now_ms = float(snapshot["now_ms"])
        now_s = now_ms / 1000.0
        boundary = round(now_s / self.interval_s)
        if abs(now_s - boundary * self.interval_s) < 1e-6 and boundary >= 1:
            k = boundary - 1  # the interval that just ended
            if k < self.n_intervals:
                self.decide(k, now_s)
                self.intervals_done = k + 1
                if self.progress:
                    self.progress(k + 1, self.n_intervals)
        else:
            self.between(now_s)
        return {
            "target_prefill": int(self.targets.prefill or 0),
            "target_decode": int(self.targets.decode or 0),
            "next_tick_ms": now_ms + TICK_MS,
        }

    def decide(self, k: int, now_s: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def between(self, now_s: float) -> None:
        """A tick between adjustment intervals: nothing by default."""

    def _observed(self, k: int, end_s: float) -> None:
        obs = self.frontend.observe(
            self.frontend.epoch + timedelta(seconds=end_s - self.interval_s),
            self.frontend.epoch + timedelta(seconds=end_s),
        )
        _record(self.timeline, k, num_req=obs.num_req, ttft_ms=obs.ttft_ms, itl_ms=obs.itl_ms)

    def _set(self, targets: Replicas) -> None:
        if targets != self.targets:
            self.actions += 1
        self.targets = targets


class FixedPlanPolicy(_TickingPolicy):
    """``static`` (one plan all along) and ``oracle`` (plan[k] during interval k)."""

    def __init__(self, frontend: MockerFrontend, plan: Sequence[Replicas], interval_s: float, n_intervals: int) -> None:
        super().__init__(frontend, plan[0], interval_s, n_intervals)
        self.plan = list(plan)
        _record(self.timeline, 0, prefill_target=plan[0].prefill, decode_target=plan[0].decode)

    def decide(self, k: int, now_s: float) -> None:
        self._observed(k, now_s)
        if k + 1 < len(self.plan):
            self._set(self.plan[k + 1])
        if k + 1 < self.n_intervals:
            _record(self.timeline, k + 1, prefill_target=self.targets.prefill, decode_target=self.targets.decode)


class CycleScalingPolicy(_TickingPolicy):
    """The production planning cycle as the mocker's external scaling policy."""

    def __init__(
        self,
        cycle: PlanningCycle,
        clock: SimulatedClock,
        frontend: MockerFrontend,
        connector: MockerConnector,
        interval_s: float,
        n_intervals: int,
    ) -> None:
        super().__init__(frontend, connector.targets, interval_s, n_intervals)
        self.cycle, self.clock, self.connector = cycle, clock, connector
        # the queue checks between cycles, at their own period (planner_core.surge), as on our engine
        self.check_s = policy_for(cycle.config.policy).queue_check_interval_s(cycle.config)
        _record(self.timeline, 0, prefill_target=self.targets.prefill, decode_target=self.targets.decode)

    def between(self, now_s: float) -> None:
        if self.check_s <= 0 or not self.frontend.ticks:
            return
        steps = now_s / self.check_s
        if abs(steps - round(steps)) > 1e-6 or now_s >= self.n_intervals * self.interval_s:
            return
        self.connector.ready = self.frontend.ticks[-1].active
        when = self.frontend.epoch + timedelta(seconds=now_s)
        self.clock.set(when)
        checked = self.cycle.check_queue(when)
        if checked is not None and checked.outcome is not None and checked.outcome.outcome == "applied":
            self.actions += 1
        self.targets = self.connector.targets

    def decide(self, k: int, now_s: float) -> None:
        end = self.frontend.epoch + timedelta(seconds=now_s)
        self.clock.set(end)
        result = self.cycle.run(window_end=end)
        if result.status in ("skipped_locked", "error"):  # the score would be silently wrong
            raise ReplayError(
                f"replay on the mocker: the planning cycle of interval {k + 1}/{self.n_intervals} "
                f"ended {result.status} ({result.error}); the replay's score would be wrong"
            )
        if result.outcome is not None and result.outcome.outcome == "applied":
            self.actions += 1
        self.targets = self.connector.targets
        obs, forecast, decision = result.observation, result.forecast, result.decision
        if obs is not None:
            _record(self.timeline, k, num_req=obs.num_req, ttft_ms=obs.ttft_ms, itl_ms=obs.itl_ms)
        if k + 1 < self.n_intervals:
            _record(
                self.timeline,
                k + 1,
                predicted_num_req=forecast.num_req if forecast and forecast.is_usable() else None,
                prefill_target=decision.prefill_replicas if decision else None,
                decode_target=decision.decode_replicas if decision else None,
            )


# ---------------------------------------------------------------------------------------------
# Scoring the mocker's report
# ---------------------------------------------------------------------------------------------


def request_latencies(per_request: Sequence[dict[str, Any]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-request TTFT and mean ITL (ms) in trace order; NaN for a request that did not finish.
    A finished one-token request has no inter-token gap: ITL 0."""
    ttft = np.full(n, np.nan)
    itl = np.full(n, np.nan)
    records = sorted(per_request, key=lambda r: (float(r["arrival_time_ms"]), int(r.get("input_length", 0))))
    for i, r in enumerate(records[:n]):
        if r.get("terminal_status", "completed") != "completed" or r.get("ttft_ms") is None:
            continue
        ttft[i] = float(r["ttft_ms"])
        itl[i] = float(r["itl_ms"]) if r.get("itl_ms") is not None else 0.0
    return ttft, itl


def worker_seconds(lifecycle: Sequence[dict[str, Any]], initial: Replicas, end_ms: float) -> dict[str, float]:
    """Worker-seconds per pool from the report's lifecycle operations: a worker costs from the
    moment it is requested (``worker_starting``) until it is gone; the initial workers from 0;
    workers still alive count until the end of the replay (``end_ms``)."""
    alive: dict[tuple[str, int], float] = {}
    total = {"prefill": 0.0, "decode": 0.0}
    for pool, count in (("prefill", initial.prefill or 0), ("decode", initial.decode or 0)):
        for worker in range(count):
            alive[(pool, worker)] = 0.0
    for op in sorted(lifecycle, key=lambda o: (float(o["at_ms"]), int(o.get("operation_ordinal", 0)))):
        pool, at = str(op["pool"]), float(op["at_ms"])
        for tr in op.get("transitions", []):
            key = (pool, int(tr["worker_id"]))
            if tr.get("prior_state") is None and key not in alive:
                alive[key] = at
            elif tr.get("state") in ("removed", "stopped", "gone", "terminated", "cancelled") and key in alive:
                total[pool] += at - alive.pop(key)
    for (pool, _), since in alive.items():
        total[pool] += max(end_ms - since, 0.0)
    return {pool: ms / 1000.0 for pool, ms in total.items()}


# ---------------------------------------------------------------------------------------------
# Running one policy
# ---------------------------------------------------------------------------------------------


def run_mocker_policy(
    workload: Workload,
    config: PlannerConfig,
    policy: str,
    *,
    startup_s: float = 60.0,
    seed: int = 0,
    store: Any = None,
    oracle_plan: Sequence[Replicas] | None = None,
    profile: Profile | None = None,
    progress: Callable[[int, int], None] | None = None,
    deployment_name: str | None = None,
    inputs: MockerInputs | None = None,
    engine: MockerEngine | None = None,
    fixed: Replicas | None = None,
) -> ReplayResult:
    """Replay ``workload`` under one policy on the mocker and score it like our engine
    (``fixed``: the replicas ``static`` holds, as in :func:`~planner_core.sim.replay.run_policy`)."""
    if policy not in MOCKER_POLICIES:
        raise ValueError(f"policy: unknown {policy!r}; choose from {', '.join(MOCKER_POLICIES)}")
    profile = profile or load_profile(config.profile_dir())
    if inputs is None:
        with mocker_inputs(workload, profile, engine) as made:
            return run_mocker_policy(
                workload,
                config,
                policy,
                startup_s=startup_s,
                seed=seed,
                store=store,
                oracle_plan=oracle_plan,
                profile=profile,
                progress=progress,
                deployment_name=deployment_name,
                inputs=made,
                fixed=fixed,
            )
    started = time.perf_counter()
    interval = float(config.adjustment_interval_s)
    plan = list(oracle_plan) if oracle_plan is not None else compute_oracle(workload, profile, config)
    n_intervals = max(1, math.ceil(workload.duration_s / interval))
    if policy in DYNAMO16_POLICIES:
        return run_dynamo16(workload, config, policy, inputs, plan, startup_s=startup_s, started=started)

    frontend = MockerFrontend(workload.start, workload.arrival_s, workload.isl, config.arrival_resolution_s)
    predictor_name: str | None = None
    worker_startup_s = startup_s
    scaling: _TickingPolicy
    if policy in ("oracle", "static"):
        if policy == "oracle":
            fixed_plan = [
                Replicas(max(r.prefill or 0, config.min_endpoint), max(r.decode or 0, config.min_endpoint))
                for r in plan
            ]
            worker_startup_s = 0.0  # the oracle's replicas are there when its interval starts
        else:
            fixed_plan = [fixed if fixed is not None else static_replicas(workload, profile, config)]
        scaling = FixedPlanPolicy(
            frontend, fixed_plan or [Replicas(config.min_endpoint, config.min_endpoint)], interval, n_intervals
        )
    else:
        cycle_config, predictor, predictor_name = closed_loop_setup(workload, config, policy, startup_s)
        initial = first_interval_replicas(workload, profile, cycle_config, startup_s)
        connector = MockerConnector(initial)
        clock = SimulatedClock(workload.start)
        cycle = replay_cycle(
            profile,
            cycle_config,
            metrics=frontend,
            connector=connector,
            clock=clock,
            predictor=predictor,
            store=store,
            deployment_name=deployment_name or replay_deployment_name(f"mocker-{workload.name}", policy),
            remembered=initial,
        )
        scaling = CycleScalingPolicy(cycle, clock, frontend, connector, interval, n_intervals)
    scaling.progress = progress
    initial_targets = scaling.targets
    native = _core().run_mocker_trace_replay(
        [str(inputs.trace)],
        prefill_engine_args=inputs.args("prefill", worker_startup_s),
        decode_engine_args=inputs.args("decode", worker_startup_s),
        num_prefill_workers=int(initial_targets.prefill or 0),
        num_decode_workers=int(initial_targets.decode or 0),
        replay_mode="offline",
        router_mode=inputs.engine.router_mode,
        trace_block_size=inputs.engine.block_size,
        sla_ttft_ms=config.ttft_ms,
        sla_itl_ms=config.itl_ms,
        capture_per_request=True,
        scaling_policy=scaling,
    )
    timeline = scaling.timeline
    timeline["oracle_prefill"] = [plan[k].prefill if k < len(plan) else None for k in range(n_intervals)]
    timeline["oracle_decode"] = [plan[k].decode if k < len(plan) else None for k in range(n_intervals)]
    return _result(
        policy,
        predictor_name,
        workload,
        config,
        plan,
        native.summary,
        native.per_request or [],
        native.lifecycle_operations,
        initial_targets,
        scaling.actions,
        started,
        n_intervals,
        timeline,
    )


def _result(
    policy: str,
    predictor: str | None,
    workload: Workload,
    config: PlannerConfig,
    plan: Sequence[Replicas],
    summary: dict[str, Any],
    per_request: Sequence[dict[str, Any]],
    lifecycle: Sequence[dict[str, Any]],
    initial: Replicas,
    actions: int,
    started: float,
    n_intervals: int,
    timeline: dict[str, list[Any]],
) -> ReplayResult:
    ttft, itl = request_latencies(per_request, len(workload))
    infeasible = infeasible_mask(
        load_profile(config.profile_dir()), workload.isl, workload.osl, config.ttft_ms, config.itl_ms
    )
    scores = score_requests(ttft, itl, infeasible, config)
    seconds = worker_seconds(lifecycle, initial, float(summary.get("duration_ms", 0.0)))
    return scored_result(
        policy,
        predictor,
        scores,
        seconds["prefill"] * config.prefill_engine_num_gpu,
        seconds["decode"] * config.decode_engine_num_gpu,
        config,
        plan,
        actions,
        n_intervals,
        timeline,
        started,
    )


# ---------------------------------------------------------------------------------------------
# Dynamo 1.6.1's own planner in the mocker's loop
# ---------------------------------------------------------------------------------------------


def dynamo16_planner_config(config: PlannerConfig, target: str, report_dir: Path) -> dict[str, Any]:
    """Dynamo 1.6.1's planner config with our SLA, interval, budget and profile.

    ``target`` is its ``optimization_target``: ``sla`` (the SLA sizing loop, every adjustment
    interval) or ``throughput`` (its default: static queue and KV thresholds)."""
    return {
        "environment": "virtual",
        "backend": "vllm",
        "mode": "disagg",
        "optimization_target": target,
        "throughput_adjustment_interval_seconds": int(config.adjustment_interval_s),
        "max_gpu_budget": int(config.max_gpu_budget),
        "min_endpoint": int(config.min_endpoint),
        "ttft_ms": float(config.ttft_ms),
        "itl_ms": float(config.itl_ms),
        "prefill_engine_num_gpu": int(config.prefill_engine_num_gpu),
        "decode_engine_num_gpu": int(config.decode_engine_num_gpu),
        "profile_results_dir": str(config.profile_dir()),
        "report_output_dir": str(report_dir),
    }


def run_dynamo16(
    workload: Workload,
    config: PlannerConfig,
    policy: str,
    inputs: MockerInputs,
    plan: Sequence[Replicas],
    *,
    startup_s: float,
    started: float,
) -> ReplayResult:
    """``dynamo-1.6-sla`` / ``dynamo-1.6-throughput``: Dynamo 1.6.1's planner through its own
    replay entry point, on the same trace, engines and start-up as our policies."""
    _quiet_dynamo_logs()
    try:
        from dynamo.replay import run_trace_replay
    except ImportError as exc:
        raise MockerUnavailable(f"{policy} needs Dynamo 1.6.1's planner ({exc}): {DYNAMO16_INSTALL_HINT}") from exc
    target = policy.removeprefix("dynamo-1.6-")
    interval = float(config.adjustment_interval_s)
    n_intervals = max(1, math.ceil(workload.duration_s / interval))
    # Like our closed-loop policies it starts from its own sizing of the first interval's actual
    # load (Dynamo's arithmetic), as if it had been running on this traffic before the trace began.
    initial = first_interval_replicas(
        workload, inputs.profile, config.model_copy(update={"policy": Policy.DYNAMO}), startup_s
    )
    report = run_trace_replay(
        [str(inputs.trace)],
        prefill_engine_args=inputs.args("prefill", startup_s),
        decode_engine_args=inputs.args("decode", startup_s),
        num_prefill_workers=int(initial.prefill or 0),
        num_decode_workers=int(initial.decode or 0),
        router_mode=inputs.engine.router_mode,
        trace_block_size=inputs.engine.block_size,
        sla_ttft_ms=config.ttft_ms,
        sla_itl_ms=config.itl_ms,
        capture_per_request=True,
        planner_config=dynamo16_planner_config(config, target, inputs.directory / "dynamo-reports"),
    )
    planner = report.planner
    lifecycle = list(planner.lifecycle_operations) if planner is not None else []
    timeline: dict[str, list[Any]] = {key: [None] * n_intervals for key in TIMELINE_KEYS}
    timeline["start_s"] = [k * interval for k in range(n_intervals)]
    actions = 0
    if planner is not None:
        actions = sum(1 for t in planner.ticks if ((t.get("effects") or {}).get("scale_to")))
        _fill_dynamo16_timeline(timeline, planner.ticks, interval, n_intervals)
    timeline["oracle_prefill"] = [plan[k].prefill if k < len(plan) else None for k in range(n_intervals)]
    timeline["oracle_decode"] = [plan[k].decode if k < len(plan) else None for k in range(n_intervals)]
    return _result(
        policy,
        "arima" if target == "sla" else None,
        workload,
        config,
        plan,
        report.summary,
        report.per_request or [],
        lifecycle,
        initial,
        actions,
        started,
        n_intervals,
        timeline,
    )


def _fill_dynamo16_timeline(
    timeline: dict[str, list[Any]], ticks: Sequence[dict[str, Any]], interval: float, n_intervals: int
) -> None:
    """Targets per interval from its ticks (the last target set before the interval starts)."""
    last: dict[str, Any] = {}
    for tick in sorted(ticks, key=lambda t: float(t["at_ms"])):
        k = int(float(tick["at_ms"]) / 1000.0 // interval) + 1
        scale_to = (tick.get("effects") or {}).get("scale_to") or {}
        for pool in ("prefill", "decode"):
            value = scale_to.get(pool) if isinstance(scale_to, dict) else None
            if value is not None:
                last[pool] = value
        traffic = (tick.get("input") or {}).get("traffic") or {}
        if traffic.get("num_req") is not None and 0 <= k - 1 < n_intervals:
            timeline["num_req"][k - 1] = traffic["num_req"]
        if k < n_intervals:
            for pool in ("prefill", "decode"):
                if pool in last:
                    timeline[f"{pool}_target"][k] = last[pool]


# ---------------------------------------------------------------------------------------------
# Agreement between the engines: the same requests at fixed replicas
# ---------------------------------------------------------------------------------------------

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class FixedReplay:
    """Per-request latencies of one replay at fixed replicas (NaN: the request did not finish)."""

    engine: str
    ttft_ms: np.ndarray
    itl_ms: np.ndarray
    wall_s: float

    @property
    def completed(self) -> int:
        return int(np.sum(np.isfinite(self.ttft_ms) & np.isfinite(self.itl_ms)))

    def percentiles(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, values in (("ttft", self.ttft_ms), ("itl", self.itl_ms)):
            finite = values[np.isfinite(values)]
            for q in PERCENTILES:
                out[f"p{q}_{name}_ms"] = float(np.percentile(finite, q)) if finite.size else float("nan")
        return out


def replay_fixed(
    engine: str,
    workload: Workload,
    profile: Profile,
    replicas: Replicas,
    mocker_engine: MockerEngine | None = None,
) -> FixedReplay:
    """Replay ``workload`` on ``engine`` (``ours`` or ``mocker``) with ``replicas`` all along and
    no planner: the two engines' own modelling, nothing else."""
    started = time.perf_counter()
    if engine == "ours":
        from planner_core.sim.cluster import ClusterSimulator

        cap = (mocker_engine or MockerEngine()).max_num_seqs  # the same sequence cap on both engines
        sim = ClusterSimulator(
            profile, workload.arrival_s, workload.isl, workload.osl, initial=replicas, startup_s=0.0, max_num_seqs=cap
        )
        sim.advance_to(math.inf)
        res = sim.results()
        return FixedReplay(
            engine,
            np.asarray(res.ttft_ms, dtype=float),
            np.asarray(res.itl_ms, dtype=float),
            time.perf_counter() - started,
        )
    if engine != "mocker":
        raise ValueError(f"engine: unknown {engine!r}; choose ours or mocker")
    with mocker_inputs(workload, profile, mocker_engine) as inputs:
        native = _core().run_mocker_trace_replay(
            [str(inputs.trace)],
            prefill_engine_args=inputs.args("prefill", 0.0),
            decode_engine_args=inputs.args("decode", 0.0),
            num_prefill_workers=int(replicas.prefill or 0),
            num_decode_workers=int(replicas.decode or 0),
            replay_mode="offline",
            router_mode=inputs.engine.router_mode,
            trace_block_size=inputs.engine.block_size,
            capture_per_request=True,
        )
        ttft, itl = request_latencies(native.per_request or [], len(workload))
    return FixedReplay(engine, ttft, itl, time.perf_counter() - started)


def fixed_capacity_per_s(
    profile: Profile, isl: np.ndarray, osl: np.ndarray, replicas: Replicas, engine: MockerEngine | None = None
) -> dict[str, float]:
    """Requests/s a fixed cluster sustains on requests shaped like (``isl``, ``osl``), per pool and
    for the whole (the lesser): prefill engines running full ``max_num_batched_tokens`` passes (the
    profile's throughput at that token count), decode engines holding ``max_num_seqs`` sequences
    (or as many as their KV takes) at the profile's ITL for them."""
    engine = engine or MockerEngine()
    budget = float(engine.max_num_batched_tokens)
    prefill_tok_s = budget / (profile.prefill.ttft_ms(budget) / 1000.0)
    prefill = (replicas.prefill or 0) * prefill_tok_s / float(np.mean(isl))
    ctx = float(np.mean(np.asarray(isl) + np.asarray(osl) / 2.0))
    seqs = min(float(engine.max_num_seqs), profile.decode.max_kv_tokens / ctx)
    itl_s = profile.decode.surface.itl_ms(seqs, ctx) / 1000.0
    decode = (replicas.decode or 0) * seqs / (float(np.mean(osl)) * itl_s)
    return {"prefill": prefill, "decode": decode, "cluster": min(prefill, decode)}


def poisson_workload(
    rate_per_s: float, duration_s: float, isl: np.ndarray, osl: np.ndarray, seed: int = 0, name: str = "poisson"
) -> Workload:
    """Poisson arrivals at ``rate_per_s`` for ``duration_s``, with (ISL, OSL) pairs drawn from the given ones."""
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(rate_per_s * duration_s))
    arrival = np.sort(rng.uniform(0.0, duration_s, n))
    pick = rng.integers(0, isl.size, n)
    return Workload(arrival, np.asarray(isl, dtype=float)[pick], np.asarray(osl, dtype=float)[pick], name)

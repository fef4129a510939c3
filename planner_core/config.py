"""Every planner setting in one typed model, spelled as NVIDIA Dynamo's planner spells it.

The same :class:`PlannerConfig` is built from three sources, so a Dynamo user can switch
without renaming anything:

* command-line flags (``--adjustment-interval``, ``--max-gpu-budget``, ``--ttft`` ...), see
  :func:`add_config_arguments` / :func:`config_from_args`;
* environment variables (``DYN_NAMESPACE``, ``PROMETHEUS_ENDPOINT``,
  ``PLANNER_PROMETHEUS_PORT`` as Dynamo reads them, and ``PLANNER_<FIELD>`` for every field),
  see :func:`config_from_env`;
* a Prefect parameter object: the model itself is a pydantic model, so a flow can take it as a
  parameter and the Prefect UI renders a form.

Validation errors name the field and say how to fix it (:class:`ConfigError`).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BUNDLED_PROFILE_DIR = Path(__file__).parent / "data" / "profiles" / "h200_llama31_8b_fp8_tp1"
BUNDLED_TRACE = Path(__file__).parent / "data" / "traces" / "azure_conv_2023.csv"
log = logging.getLogger("sla_planner.config")
DEFAULT_PROMETHEUS_ENDPOINT = "http://prometheus-kube-prometheus-prometheus.monitoring.svc.cluster.local:9090"


class Environment(StrEnum):
    KUBERNETES = "kubernetes"
    VIRTUAL = "virtual"


class Backend(StrEnum):
    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"
    MOCKER = "mocker"


class Mode(StrEnum):
    DISAGG = "disagg"
    PREFILL = "prefill"
    DECODE = "decode"


class Policy(StrEnum):
    """Sizing policy. ``dynamo`` reproduces Dynamo's arithmetic; ``default`` is ours;
    ``dynamo-tuned`` is Dynamo's arithmetic as a careful user would tune it (docs/baselines.md)."""

    DEFAULT = "default"
    DYNAMO = "dynamo"
    DYNAMO_TUNED = "dynamo-tuned"


# Policies that run Dynamo's planner loop (skip cycles during a rollout, hold through idle time).
DYNAMO_POLICIES = (Policy.DYNAMO, Policy.DYNAMO_TUNED)


class RolloutBehaviour(StrEnum):
    """What a cycle does when the previous change is still rolling out.

    ``skip``      Dynamo's rule: apply nothing until the rollout settles (the decision is recorded).
    ``scale_up``  apply the pools that grow now, hold the pools that would shrink: a burst
                  that arrives mid-rollout gets capacity, and replicas still starting are not
                  cancelled by a forecast that the rollout itself has not been able to serve yet.
    ``scale_down`` Dynamo 1.6's rule: hold the pools that would grow, apply the ones that shrink
                  (a scale-down may cancel replicas still starting).
    ``apply``     apply every decision as it comes.
    """

    SKIP = "skip"
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    APPLY = "apply"


class ComponentNames(NamedTuple):
    prefill: str
    decode: str


# Kubernetes service names of the worker components, per backend (Dynamo's current names).
COMPONENT_NAMES: dict[Backend, ComponentNames] = {
    Backend.VLLM: ComponentNames("VllmPrefillWorker", "VllmDecodeWorker"),
    Backend.SGLANG: ComponentNames("prefill", "decode"),
    Backend.TRTLLM: ComponentNames("prefill", "decode"),
    Backend.MOCKER: ComponentNames("prefill", "decode"),
}

# Plain workloads the Kubernetes connector can scale through their scale subresource.
WORKLOAD_KINDS = ("deployment", "statefulset")

LOAD_PREDICTORS = ("constant", "arima", "kalman", "prophet", "seasonal", "holt_winters", "auto")


# Arrival counts per interval the metrics source reads (one per --arrival-resolution-s step).
MAX_ARRIVAL_STEPS = 100_000


class ConfigError(ValueError):
    """A setting is missing or out of range. The message names the field and the fix."""


class PlannerConfig(BaseModel):
    """All planner settings. Field names carry units; CLI flags keep Dynamo's spelling."""

    # allow_inf_nan=False: an SLA of ``inf`` ms or a NaN knob is refused, never planned with.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False, allow_inf_nan=False)

    # Where and what we plan.
    environment: Environment = Field(
        Environment.KUBERNETES, description="kubernetes (scale a DynamoGraphDeployment) or virtual"
    )
    namespace: str = Field("dynamo", min_length=1, description="Dynamo namespace (DYN_NAMESPACE)")
    backend: Backend = Field(Backend.VLLM, description="inference backend: vllm|sglang|trtllm|mocker")
    mode: Mode = Field(Mode.DISAGG, description="plan both pools (disagg) or one (prefill|decode)")
    model_name: str | None = Field(None, description="served model name used to filter metrics")
    no_operation: bool = Field(False, description="compute and record decisions, never scale")
    log_dir: str | None = Field(None, description="directory for planner logs")

    # Cadence and capacity limits.
    adjustment_interval_s: int = Field(180, gt=0, description="seconds between planning cycles")
    max_gpu_budget: int = Field(8, gt=0, description="most GPUs prefill and decode may use together")
    min_endpoint: int = Field(1, ge=0, description="fewest replicas of each planned component")
    prefill_engine_num_gpu: int = Field(1, gt=0, description="GPUs per prefill engine")
    decode_engine_num_gpu: int = Field(1, gt=0, description="GPUs per decode engine")
    prefill_max_replicas: int | None = Field(None, gt=0, description="cap on prefill replicas")
    decode_max_replicas: int | None = Field(None, gt=0, description="cap on decode replicas")
    # Engine limits (vLLM's and Dynamo's mocker's defaults).
    max_num_seqs: int = Field(
        256, gt=0, description="sequences one engine runs at once (vLLM --max-num-seqs); decode is sized for it"
    )
    max_num_batched_tokens: int = Field(
        8192, gt=0, description="tokens one engine processes per forward pass (vLLM --max-num-batched-tokens)"
    )

    # Performance model and targets.
    profile_results_dir: str | None = Field(
        None, description="Dynamo profiling results directory; empty = bundled H200 profile"
    )
    ttft_ms: float = Field(500.0, gt=0, description="time-to-first-token SLA, milliseconds")
    itl_ms: float = Field(50.0, gt=0, description="inter-token latency SLA, milliseconds")
    isl: int = Field(3000, gt=0, description="default input sequence length, tokens")
    osl: int = Field(150, gt=0, description="default output sequence length, tokens")
    no_correction: bool = Field(False, description="ignore how the live system compares to profile")
    policy: Policy = Field(Policy.DEFAULT, description="sizing policy: default (ours), dynamo or dynamo-tuned")
    sla_attainment: float = Field(
        0.99, gt=0.5, lt=1.0, description="default policy: share of requests sized to meet the TTFT SLA"
    )
    size_for_upper_quantile: bool = Field(
        True, description="default policy: size for the forecast's upper quantile, not its mean"
    )
    apply_prefill_correction: bool = Field(
        False, description="default policy: scale prefill service time by observed/profiled TTFT"
    )
    decode_target_utilization: float = Field(
        0.85, gt=0.0, le=1.0, description="default policy: plan decode engines at this share of profiled throughput"
    )
    prefill_throughput_factor: float = Field(
        1.0,
        gt=0.0,
        le=4.0,
        description="dynamo-tuned policy: size prefill for this share of the profiled throughput (0.6 = 40 % headroom)",
    )
    decode_target_factor: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="dynamo-tuned policy: size decode for this share of the ITL SLA and of max_num_seqs",
    )
    idle_cooldown_s: int = Field(
        300,
        ge=0,
        description="default policy: after traffic stops, hold the replicas this long before planning for "
        "zero traffic (KEDA's cooldownPeriod); 0 = act on the first idle interval",
    )
    # Scale-up takes a worker start-up, scale-down is immediate: a pool shrunk on one low
    # forecast is short for a start-up when the load comes back. Two minutes held the Azure
    # replays' ramps (conv x30: 88 % -> 98 % SLA met) for 6 % more GPU-hours; longer cost more.
    scale_down_stabilization_s: int = Field(
        120, ge=0, description="default policy: shrink a pool only to the highest target of this many seconds"
    )
    scale_down_max_percent: float = Field(
        50.0,
        gt=0,
        le=100,
        description="default policy: one cycle may take a pool down by at most this percent of its current "
        "replicas (at least 1 replica); 100 = no bound",
    )

    # Between cycles, a burst that starts just after one would wait for the next cycle and a
    # start-up after it: the check adds prefill engines as soon as the queue misses the TTFT
    # budget (planner_core/surge.py). Azure code x10: 94.8 % -> see docs/simulator.md.
    queue_check_interval_s: float = Field(
        5.0,
        ge=0,
        description="default policy: seconds between queue checks that add prefill engines when prompts wait "
        "past the TTFT budget (Dynamo 1.6's load loop runs every 5 s); 0 = off",
    )

    # Load prediction.
    load_predictor: str = Field("arima", description="one of " + ", ".join(LOAD_PREDICTORS))
    load_predictor_log1p: bool = Field(False, description="fit predictors in log1p space")
    load_prediction_window_size: int = Field(50, gt=1, description="points an ARIMA fit sees")
    prophet_window_size: int = Field(50, gt=1, description="points a Prophet fit sees")
    load_predictor_warmup_trace: str | None = Field(
        None, description="Mooncake-style JSONL trace fed to the predictors before live data"
    )
    kalman_q_level: float = Field(1.0, gt=0, description="Kalman process noise of the level")
    kalman_q_trend: float = Field(0.1, gt=0, description="Kalman process noise of the trend")
    kalman_r: float = Field(10.0, gt=0, description="Kalman measurement noise")
    kalman_min_points: int = Field(5, gt=0, description="points before the Kalman filter is used")

    # Connectors (planner_core/connectors): where the targets go.
    dgd_name: str | None = Field(
        None, description="the DynamoGraphDeployment to scale (DYN_PARENT_DGD_K8S_NAME); kubernetes environment"
    )
    kubernetes_namespace: str | None = Field(
        None, description="Kubernetes namespace of the workloads; empty = the planner pod's own namespace"
    )
    prefill_component_name: str | None = Field(
        None, description="service name of the prefill workers; empty = the backend's (vllm: VllmPrefillWorker)"
    )
    decode_component_name: str | None = Field(
        None, description="service name of the decode workers; empty = the backend's (vllm: VllmDecodeWorker)"
    )
    prefill_workload: str | None = Field(
        None, description="plain workload of the prefill workers instead of a DGD: deployment/NAME or statefulset/NAME"
    )
    decode_workload: str | None = Field(
        None, description="plain workload of the decode workers instead of a DGD: deployment/NAME or statefulset/NAME"
    )
    while_rolling_out: RolloutBehaviour = Field(
        RolloutBehaviour.SCALE_UP,
        description="while the last change is still rolling out: scale_up (apply growth, hold shrinking), "
        "skip (Dynamo's rule; always used by --policy dynamo) or apply",
    )
    scaling_check_interval_s: float = Field(
        10.0, gt=0, description="virtual connector: seconds between checks for the acknowledgement"
    )
    scaling_max_wait_time_s: float = Field(
        1800.0, gt=0, description="virtual connector: seconds to wait for an acknowledgement before giving up"
    )

    # Metrics in and out.
    metric_pulling_prometheus_endpoint: str = Field(
        DEFAULT_PROMETHEUS_ENDPOINT, description="Prometheus to read frontend metrics from"
    )
    metric_reporting_prometheus_port: int = Field(
        0, ge=0, le=65535, description="port for the planner's own metrics; 0 = off"
    )
    metric_reporting_prometheus_address: str = Field(
        "127.0.0.1", min_length=1, description="address the planner's own metrics bind to (0.0.0.0 = all)"
    )
    arrival_resolution_s: float = Field(
        5.0,
        gt=0,
        description="step of the per-step arrival counts read from the frontend's request counter: the "
        "Prometheus scrape interval of the frontend (5 s in Dynamo's own setup; often 15-30 s)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_arrival_resolution(cls, data: Any) -> Any:
        """Left unset, the 5 s default gives way to the interval itself when it does not divide it
        (one count per interval: no burst pattern); set explicitly, it must divide it."""
        if not isinstance(data, Mapping) or data.get("arrival_resolution_s") is not None:
            return data
        default = float(cls.model_fields["arrival_resolution_s"].default)
        try:
            interval = float(data.get("adjustment_interval_s", cls.model_fields["adjustment_interval_s"].default))
        except (TypeError, ValueError):
            return data  # the field's own validation reports it
        steps = interval / default
        if not math.isfinite(steps):
            return data  # the field's own validation reports it
        if interval > 0 and abs(steps - round(steps)) > 1e-9:
            return {**data, "arrival_resolution_s": interval}
        return data

    @model_validator(mode="after")
    def _check_consistency(self) -> PlannerConfig:
        if self.load_predictor not in LOAD_PREDICTORS:
            raise ValueError(
                f"load_predictor: unknown predictor {self.load_predictor!r}; choose one of {', '.join(LOAD_PREDICTORS)}"
            )
        for component in ("prefill", "decode"):
            workload = getattr(self, f"{component}_workload")
            if workload is not None:
                kind, _, name = workload.partition("/")
                if kind.lower() not in WORKLOAD_KINDS or not name:
                    raise ValueError(
                        f"{component}_workload: {workload!r} is not KIND/NAME; write deployment/NAME or "
                        f"statefulset/NAME (--{component}-workload)"
                    )
        needed = self.minimum_gpus()
        if self.max_gpu_budget < needed:
            raise ValueError(
                f"max_gpu_budget: {self.max_gpu_budget} GPUs cannot hold the minimum of "
                f"{self.min_endpoint} replica(s) per planned component ({needed} GPUs at "
                f"{self.prefill_engine_num_gpu} GPU(s) per prefill, {self.decode_engine_num_gpu} per decode engine); "
                f"raise --max-gpu-budget to at least {needed}, lower --min-endpoint or the engines' GPUs"
            )
        steps = self.adjustment_interval_s / self.arrival_resolution_s
        if not steps <= MAX_ARRIVAL_STEPS:  # (also inf: a resolution of 1e-320 s)
            raise ValueError(
                f"arrival_resolution_s: {self.arrival_resolution_s:g} s (--arrival-resolution-s) in an interval of "
                f"{self.adjustment_interval_s} s (--adjustment-interval) is more than {MAX_ARRIVAL_STEPS:,} counts; "
                "give the frontend's scrape interval (such as 5) and a shorter interval"
            )
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(
                f"arrival_resolution_s (--arrival-resolution-s): {self.arrival_resolution_s:g} s does not divide "
                f"--adjustment-interval "
                f"{self.adjustment_interval_s} s; pick a divisor such as 1, 5, 15 or 30"
            )
        for component in ("prefill", "decode"):
            cap = getattr(self, f"{component}_max_replicas")
            if cap is not None and cap < self.min_endpoint:
                raise ValueError(
                    f"{component}_max_replicas: cap {cap} is below --min-endpoint "
                    f"{self.min_endpoint}; raise the cap or lower --min-endpoint"
                )
        return self

    # Derived values -------------------------------------------------------------------------
    def plans_prefill(self) -> bool:
        return self.mode in (Mode.DISAGG, Mode.PREFILL)

    def plans_decode(self) -> bool:
        return self.mode in (Mode.DISAGG, Mode.DECODE)

    def minimum_gpus(self) -> int:
        """GPUs that ``min_endpoint`` replicas of every planned component occupy."""
        gpus = 0
        if self.plans_prefill():
            gpus += self.min_endpoint * self.prefill_engine_num_gpu
        if self.plans_decode():
            gpus += self.min_endpoint * self.decode_engine_num_gpu
        return gpus

    def component_names(self) -> ComponentNames:
        """Service names of the worker pools: the settings' override, else the backend's."""
        default = COMPONENT_NAMES[self.backend]
        return ComponentNames(
            self.prefill_component_name or default.prefill, self.decode_component_name or default.decode
        )

    def rollout_behaviour(self) -> RolloutBehaviour:
        """``--policy dynamo`` reproduces Dynamo, which skips the cycle during a rollout."""
        return RolloutBehaviour.SKIP if self.policy in DYNAMO_POLICIES else self.while_rolling_out

    def profile_dir(self) -> Path:
        return Path(self.profile_results_dir) if self.profile_results_dir else BUNDLED_PROFILE_DIR


# The settings the pure sizing reads (planner_core.sizing): what `size` takes from the environment.
SIZING_FIELDS = (
    "adjustment_interval_s",
    "max_gpu_budget",
    "min_endpoint",
    "prefill_engine_num_gpu",
    "decode_engine_num_gpu",
    "prefill_max_replicas",
    "decode_max_replicas",
    "max_num_seqs",
    "profile_results_dir",
    "mode",
    "policy",
    "ttft_ms",
    "itl_ms",
    "isl",
    "osl",
    "no_correction",
    "sla_attainment",
    "size_for_upper_quantile",
    "apply_prefill_correction",
    "decode_target_utilization",
    "prefill_throughput_factor",
    "decode_target_factor",
)


def _validation_message(err: ValidationError, sources: Mapping[str, str] | None = None) -> str:
    """One line per error, naming where the value came from: the environment variable that set
    it, else the field and its flag."""
    lines = []
    for item in err.errors():
        field = ".".join(str(part) for part in item["loc"])
        msg = item["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if not field:  # a cross-field check: its message starts with the field it blames
            lines.append(msg)
            continue
        source = (sources or {}).get(field) or _FLAG_FOR_FIELD.get(field)
        where = f"{field} ({source})" if source else field
        got = item.get("input")
        suffix = "" if isinstance(got, Mapping) or got is None else f" (got {got!r})"
        lines.append(f"{where}: {msg}{suffix}; give a valid {source or field}")
    # One line (the CLI prints `sla-planner <cmd>: error: <this>`), errors separated by " | ".
    return " | ".join(lines)


def make_config(**values: Any) -> PlannerConfig:
    """Build a config, turning pydantic's errors into one :class:`ConfigError`."""
    return _make_config(values)


def _make_config(values: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> PlannerConfig:
    try:
        return PlannerConfig(**values)
    except ValidationError as err:
        raise ConfigError(_validation_message(err, sources)) from None


# ---------------------------------------------------------------------------------------------
# Environment variables
# ---------------------------------------------------------------------------------------------

# Variables Dynamo itself reads, mapped to our fields.
DYNAMO_ENV_VARS: dict[str, str] = {
    "DYN_NAMESPACE": "namespace",
    "PROMETHEUS_ENDPOINT": "metric_pulling_prometheus_endpoint",
    "PLANNER_PROMETHEUS_PORT": "metric_reporting_prometheus_port",
    "DYN_PARENT_DGD_K8S_NAME": "dgd_name",
    "SCALING_CHECK_INTERVAL": "scaling_check_interval_s",
    "SCALING_MAX_WAIT_TIME": "scaling_max_wait_time_s",
}
ENV_PREFIX = "PLANNER_"
# PLANNER_* variables that are not settings of the model but are read elsewhere.
OTHER_ENV_VARS = ("PLANNER_DB_URL", "PLANNER_TEST_PG_ADMIN_URL", "PLANNER_BENCH_PG_ADMIN_URL")


def config_from_env(
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    *,
    env_fields: Sequence[str] | None = None,
    **overrides: Any,
) -> PlannerConfig:
    """Settings from ``DYN_NAMESPACE`` / ``PROMETHEUS_ENDPOINT`` / ``PLANNER_PROMETHEUS_PORT``
    and ``PLANNER_<FIELD>`` (for example ``PLANNER_MAX_GPU_BUDGET=16``); ``overrides`` win.
    ``defaults``: an entry point's own defaults, under the environment (the model's otherwise).

    ``env_fields``: read only these fields from the environment (a command that does not use a
    setting is not failed by a bad value of it). An unknown ``PLANNER_*`` variable, a misspelt
    setting most likely, is logged as a warning. An invalid value names its variable."""
    env = os.environ if environ is None else environ
    wanted = set(PlannerConfig.model_fields if env_fields is None else env_fields)
    values: dict[str, Any] = dict(defaults or {})
    sources: dict[str, str] = {}
    for var, field in DYNAMO_ENV_VARS.items():
        if env.get(var) and field in wanted:
            values[field], sources[field] = env[var], var
    for field in PlannerConfig.model_fields:
        var = ENV_PREFIX + field.upper()
        if var in env and field in wanted:
            raw = env[var]
            values[field] = _parse_bool(raw, var) if _is_bool_field(field) else raw
            sources[field] = var
    warn_unknown_env(env)
    values.update(overrides)
    for field in overrides:
        sources.pop(field, None)
    return _make_config(values, sources)


def known_env_vars() -> set[str]:
    fields = {ENV_PREFIX + f.upper() for f in PlannerConfig.model_fields}
    return fields | set(DYNAMO_ENV_VARS) | set(OTHER_ENV_VARS)


def warn_unknown_env(env: Mapping[str, str]) -> list[str]:
    """Warn about each ``PLANNER_*`` variable no setting reads; returns the warnings."""
    import difflib

    known = known_env_vars()
    warnings = []
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX) and v not in known):
        # A missing unit suffix (PLANNER_ITL for PLANNER_ITL_MS) first, then the closest spelling.
        close = [k for k in sorted(known) if k.startswith(var + "_")]
        close = close or difflib.get_close_matches(var, sorted(known), n=1)
        hint = f"did you mean {close[0]}?" if close else "see the README's configuration table"
        warnings.append(f"{var}: no planner setting has this name, ignored; {hint}")
    for message in warnings:
        log.warning(message)
    return warnings


def _is_bool_field(field: str) -> bool:
    return PlannerConfig.model_fields[field].annotation in (bool, "bool")


def _parse_bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


# ---------------------------------------------------------------------------------------------
# Command-line flags (Dynamo's spelling)
# ---------------------------------------------------------------------------------------------


class _Flag(NamedTuple):
    flag: str
    field: str
    aliases: tuple[str, ...] = ()


FLAGS: tuple[_Flag, ...] = (
    _Flag("--environment", "environment"),
    _Flag("--namespace", "namespace"),
    _Flag("--backend", "backend"),
    _Flag("--mode", "mode"),
    _Flag("--model-name", "model_name"),
    _Flag("--no-operation", "no_operation"),
    _Flag("--log-dir", "log_dir"),
    _Flag("--adjustment-interval", "adjustment_interval_s", ("--interval-s",)),
    _Flag("--max-gpu-budget", "max_gpu_budget"),
    _Flag("--min-endpoint", "min_endpoint"),
    _Flag("--prefill-engine-num-gpu", "prefill_engine_num_gpu"),
    _Flag("--decode-engine-num-gpu", "decode_engine_num_gpu"),
    _Flag("--prefill-max-replicas", "prefill_max_replicas"),
    _Flag("--decode-max-replicas", "decode_max_replicas"),
    _Flag("--max-num-seqs", "max_num_seqs"),
    _Flag("--max-num-batched-tokens", "max_num_batched_tokens"),
    _Flag("--profile-results-dir", "profile_results_dir", ("--profile-dir",)),
    _Flag("--ttft", "ttft_ms", ("--ttft-ms",)),
    _Flag("--itl", "itl_ms", ("--itl-ms",)),
    _Flag("--isl", "isl"),
    _Flag("--osl", "osl"),
    _Flag("--no-correction", "no_correction"),
    _Flag("--policy", "policy"),
    _Flag("--scale-down-stabilization", "scale_down_stabilization_s"),
    _Flag("--scale-down-max-percent", "scale_down_max_percent"),
    _Flag("--idle-cooldown", "idle_cooldown_s"),
    _Flag("--queue-check-interval", "queue_check_interval_s"),
    _Flag("--sla-attainment", "sla_attainment"),
    _Flag("--decode-target-utilization", "decode_target_utilization"),
    _Flag("--prefill-throughput-factor", "prefill_throughput_factor"),
    _Flag("--decode-target-factor", "decode_target_factor"),
    _Flag("--apply-prefill-correction", "apply_prefill_correction"),
    _Flag("--load-predictor", "load_predictor", ("--predictor",)),
    _Flag("--load-predictor-log1p", "load_predictor_log1p"),
    _Flag("--load-prediction-window-size", "load_prediction_window_size"),
    _Flag("--prophet-window-size", "prophet_window_size"),
    _Flag("--load-predictor-warmup-trace", "load_predictor_warmup_trace"),
    _Flag("--kalman-q-level", "kalman_q_level"),
    _Flag("--kalman-q-trend", "kalman_q_trend"),
    _Flag("--kalman-r", "kalman_r"),
    _Flag("--kalman-min-points", "kalman_min_points"),
    _Flag("--dgd-name", "dgd_name"),
    _Flag("--kubernetes-namespace", "kubernetes_namespace"),
    _Flag("--prefill-component-name", "prefill_component_name"),
    _Flag("--decode-component-name", "decode_component_name"),
    _Flag("--prefill-workload", "prefill_workload"),
    _Flag("--decode-workload", "decode_workload"),
    _Flag("--while-rolling-out", "while_rolling_out"),
    _Flag("--scaling-check-interval", "scaling_check_interval_s"),
    _Flag("--scaling-max-wait-time", "scaling_max_wait_time_s"),
    _Flag("--metric-pulling-prometheus-endpoint", "metric_pulling_prometheus_endpoint"),
    _Flag("--metric-reporting-prometheus-port", "metric_reporting_prometheus_port"),
    _Flag("--metric-reporting-prometheus-address", "metric_reporting_prometheus_address"),
    _Flag("--arrival-resolution-s", "arrival_resolution_s"),
)
_FLAG_FOR_FIELD = {f.field: f.flag for f in FLAGS}


def add_config_arguments(
    parser: argparse.ArgumentParser, only: Sequence[str] | None = None, defaults: Mapping[str, Any] | None = None
) -> None:
    """Add the Dynamo-spelled flags (all, or the fields named in ``only``) to ``parser``.

    ``defaults`` are the entry point's own defaults (pass the same mapping to
    :func:`config_from_args`); ``--help`` shows them. The parsed values stay ``None`` when a flag
    is not given, so that :func:`config_from_args` can layer flags over environment variables
    over the entry point's defaults over the model's."""
    group = parser.add_argument_group("planner settings (Dynamo's flag names)")
    for flag in FLAGS:
        if only is not None and flag.field not in only:
            continue
        info = PlannerConfig.model_fields[flag.field]
        default = (defaults or {}).get(flag.field, info.default)
        help_text = f"{info.description} (default: {getattr(default, 'value', default)})"
        if _is_bool_field(flag.field):
            group.add_argument(
                flag.flag,
                *flag.aliases,
                dest=flag.field,
                action="store_const",
                const=True,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag.flag,
                *flag.aliases,
                dest=flag.field,
                default=None,
                help=help_text,
                metavar=flag.field.upper(),
            )


def config_from_args(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    env_fields: Sequence[str] | None = None,
) -> PlannerConfig:
    """Flags given on the command line over environment variables over ``defaults`` (the entry
    point's, as given to :func:`add_config_arguments`) over the model's defaults
    (``env_fields``: see :func:`config_from_env`)."""
    given = {f.field: getattr(args, f.field) for f in FLAGS if getattr(args, f.field, None) is not None}
    return config_from_env(environ, defaults, env_fields=env_fields, **given)

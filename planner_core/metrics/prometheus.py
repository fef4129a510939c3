"""The production ``MetricsSource``: the Dynamo frontend's metrics, read from Prometheus.

For one adjustment interval it returns the request count (offered load:
``dynamo_frontend_requests_started_total``, falling back to ``dynamo_frontend_requests_total``
on frontends that predate it, as Dynamo 1.6 does), the mean TTFT, ITL, request duration, ISL
and OSL, the per-step arrival counts at ``--arrival-resolution-s``, and the requests waiting
for a first token (``dynamo_frontend_queued_requests``) when the frontend exports it.

Missing data is never 0 (0 would read as zero traffic): no series, NaN, +Inf, a counter that
went down (a reset), an HTTP error, a timeout or a malformed answer each give ``None`` values
with ``Observation.quality`` and ``Observation.error`` saying why (see :data:`QUALITY`).

HTTP goes through ``requests`` with one session, a timeout and retries of connection errors
and 5xx answers; authentication and TLS use Dynamo 1.6's environment variables
(:class:`PrometheusSettings`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from planner_core.config import ConfigError, PlannerConfig
from planner_core.metrics import promql
from planner_core.metrics.promql import SeriesQuery
from planner_core.records import Observation
from planner_core.redaction import redact_url

log = logging.getLogger("sla_planner.metrics")

# Observation.quality values this source sets, and what they mean.
QUALITY = {
    "ok": "every value present (a mean is None only when no request reached that stage in the window)",
    "partial": "the request count is present but some means are missing (error says which and why)",
    "no_data": "Prometheus answered but has no usable request-count series for this model and namespace",
    "error": "Prometheus could not be asked (connection refused, timeout, HTTP error, malformed answer)",
    "stale": "Prometheus holds no current sample of the request counter (the frontend is no longer scraped) "
    "or its newest sample is older than the stale-data guard allows (planner_core.safety)",
}


MAX_UNIX_S = 253_402_300_800.0  # 10000-01-01


class PrometheusQueryError(Exception):
    """Prometheus could not answer; ``str(exc)`` says what happened and what to check."""


@dataclass(frozen=True)
class Series:
    """One series of a query answer: its labels and ``(unix seconds, value)`` points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def _number(raw: Any, what: str) -> float:
    """Prometheus sends sample values as strings ("12.5", "NaN", "+Inf"); accept numbers too."""
    if isinstance(raw, bool):
        raise PrometheusQueryError(f"malformed answer: {what} is a boolean ({raw!r})")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            raise PrometheusQueryError(f"malformed answer: {what} {raw!r} is not a number") from None
    raise PrometheusQueryError(f"malformed answer: {what} has type {type(raw).__name__}")


def _point(raw: Any) -> tuple[float, float]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise PrometheusQueryError(f"malformed answer: a sample must be [timestamp, value], got {raw!r:.80}")
    at = _number(raw[0], "timestamp")
    if not math.isfinite(at):  # values may be NaN or Inf (they say why a value is missing), times not
        raise PrometheusQueryError(f"malformed answer: a sample's timestamp is {raw[0]!r:.40}")
    return at, _number(raw[1], "value")


def parse_response(body: str | bytes) -> list[Series]:
    """The series of a ``/api/v1/query`` or ``/api/v1/query_range`` JSON answer.

    Raises :class:`PrometheusQueryError` for malformed JSON, ``status: error`` (with
    Prometheus's own message) and answers of the wrong shape."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PrometheusQueryError(
            f"malformed answer: not JSON ({exc}); is the endpoint a Prometheus server?"
        ) from None
    if not isinstance(payload, dict):
        raise PrometheusQueryError("malformed answer: the JSON is not an object")
    if payload.get("status") != "success":
        kind = payload.get("errorType", "unknown")
        raise PrometheusQueryError(f"Prometheus returned an error ({kind}): {payload.get('error', 'no message')}")
    data = payload.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise PrometheusQueryError("malformed answer: no data.result")
    kind, result = data.get("resultType"), data["result"]
    if kind == "scalar":
        return [Series({}, (_point(result),))]
    if kind not in ("vector", "matrix") or not isinstance(result, list):
        raise PrometheusQueryError(f"malformed answer: unexpected result type {kind!r}")
    out = []
    for item in result:
        if not isinstance(item, dict):
            raise PrometheusQueryError("malformed answer: a series is not an object")
        labels = item.get("metric", {})
        if not isinstance(labels, dict):
            raise PrometheusQueryError("malformed answer: series labels are not an object")
        if kind == "vector":
            points: tuple[tuple[float, float], ...] = (_point(item.get("value")),)
        else:
            values = item.get("values")
            if not isinstance(values, list):
                raise PrometheusQueryError("malformed answer: a matrix series has no values list")
            points = tuple(_point(v) for v in values)
        out.append(Series({str(k): str(v) for k, v in labels.items()}, points))
    return out


# --------------------------------------------------------------------------------------------
# Settings and HTTP
# --------------------------------------------------------------------------------------------


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


@dataclass(frozen=True)
class PrometheusSettings:
    """Where and how to reach Prometheus, with Dynamo 1.6's environment variables:

    ``PROMETHEUS_ENDPOINT`` (or ``--metric-pulling-prometheus-endpoint``) the base URL;
    ``PROMETHEUS_TOKEN`` or ``PROMETHEUS_TOKEN_FILE`` a bearer token (the file is re-read on
    every query, so a rotated service-account token keeps working); ``PROMETHEUS_SSL_VERIFY``
    (default true) and ``PROMETHEUS_CA_BUNDLE`` (a CA file) for TLS;
    ``PROMETHEUS_EXTRA_QUERY_PARAMS`` extra URL parameters on every query, as ``a=1&b=2``
    (for example a tenant for Thanos or Cortex)."""

    endpoint: str
    token: str | None = None
    token_file: str | None = None
    ssl_verify: bool = True
    ca_bundle: str | None = None
    extra_params: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 5.0
    retries: int = 2

    @classmethod
    def from_env(cls, endpoint: str, environ: Mapping[str, str] | None = None, **overrides: Any) -> PrometheusSettings:
        env = os.environ if environ is None else environ
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"metric_pulling_prometheus_endpoint (--metric-pulling-prometheus-endpoint / PROMETHEUS_ENDPOINT): "
                f"{redact_url(endpoint)!r} is not an http(s) URL; give one like http://prometheus:9090"
            )
        token_file = env.get("PROMETHEUS_TOKEN_FILE") or None
        if token_file and not Path(token_file).is_file():
            raise ConfigError(f"PROMETHEUS_TOKEN_FILE: {token_file} is not a readable file; fix the path or unset it")
        ca = env.get("PROMETHEUS_CA_BUNDLE") or None
        if ca and not Path(ca).is_file():
            raise ConfigError(f"PROMETHEUS_CA_BUNDLE: {ca} is not a readable file; fix the path or unset it")
        extra = env.get("PROMETHEUS_EXTRA_QUERY_PARAMS", "")
        try:
            params = tuple(parse_qsl(extra, keep_blank_values=True, strict_parsing=True)) if extra else ()
        except ValueError:
            raise ConfigError(  # the value itself may hold a tenant token: not repeated
                "PROMETHEUS_EXTRA_QUERY_PARAMS: not of the form name=value&name2=value2; fix or unset it"
            ) from None
        values: dict[str, Any] = {
            "endpoint": endpoint.rstrip("/"),
            "token": env.get("PROMETHEUS_TOKEN") or None,
            "token_file": token_file,
            "ssl_verify": _env_bool(env, "PROMETHEUS_SSL_VERIFY", True),
            "ca_bundle": ca,
            "extra_params": params,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def shown_endpoint(self) -> str:
        """The endpoint as messages show it (a basic-auth password masked)."""
        return redact_url(self.endpoint)

    def bearer_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            return Path(self.token_file).read_text().strip() or None
        return None

    def verify(self) -> bool | str:
        """``requests``' ``verify``: the CA bundle when given (and verification is on)."""
        if not self.ssl_verify:
            return False
        return self.ca_bundle or True


class QueryAPI(Protocol):
    """What the source needs from Prometheus: a range query and an instant query."""

    def query_range(self, query: SeriesQuery, start_s: float, end_s: float, step_s: float) -> list[Series]: ...

    def query(self, query: SeriesQuery, at_s: float | None) -> list[Series]:
        """An instant query at ``at_s``; None = the server's current time."""
        ...


class PrometheusHTTP:
    """:class:`QueryAPI` over Prometheus's HTTP API (``/api/v1/query_range``, ``/api/v1/query``)."""

    def __init__(self, settings: PrometheusSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.verify = settings.verify()

    def _get(self, path: str, params: dict[str, str]) -> list[Series]:
        url = self.settings.endpoint + path
        shown = self.settings.shown_endpoint + path  # for messages: no password
        headers = {"Accept": "application/json"}
        token = self.settings.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        all_params = list(params.items()) + list(self.settings.extra_params)
        try:
            response = self.session.get(url, params=all_params, headers=headers, timeout=self.settings.timeout_s)
        except requests.RequestException as exc:
            if _timed_out(exc):
                raise PrometheusQueryError(
                    f"timeout after {self.settings.timeout_s:g} s asking {self.settings.shown_endpoint}"
                ) from None
            raise PrometheusQueryError(
                f"cannot reach Prometheus at {self.settings.shown_endpoint} ({type(exc).__name__}); "
                "check --metric-pulling-prometheus-endpoint / PROMETHEUS_ENDPOINT"
            ) from None
        if response.status_code in (401, 403):
            raise PrometheusQueryError(
                f"HTTP {response.status_code} from {shown}: set PROMETHEUS_TOKEN or PROMETHEUS_TOKEN_FILE"
            )
        if response.status_code >= 400 and response.status_code not in (400, 422, 503):
            # 400/422/503 carry Prometheus's JSON error body, parsed below
            raise PrometheusQueryError(f"HTTP {response.status_code} from {shown}; is this a Prometheus server?")
        return parse_response(response.content)

    def query_range(self, query: SeriesQuery, start_s: float, end_s: float, step_s: float) -> list[Series]:
        return self._get(
            "/api/v1/query_range",
            {"query": query.promql, "start": _ts(start_s), "end": _ts(end_s), "step": f"{step_s:g}"},
        )

    def query(self, query: SeriesQuery, at_s: float | None) -> list[Series]:
        params = {"query": query.promql}
        if at_s is not None:
            params["time"] = _ts(at_s)
        return self._get("/api/v1/query", params)


def _timed_out(exc: requests.RequestException) -> bool:
    """A timeout, also when the retries ran out on one: ``requests`` then raises a
    ``ConnectionError`` wrapping urllib3's ``MaxRetryError(ReadTimeoutError)``."""
    if isinstance(exc, requests.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # NewConnectionError (connection refused) subclasses ConnectTimeoutError in urllib3 2
    return isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _ts(seconds: float) -> str:
    return f"{seconds:.3f}"


# --------------------------------------------------------------------------------------------
# From series to an Observation
# --------------------------------------------------------------------------------------------


class MissingValue(Exception):
    """A value the window cannot give; the message is the reason recorded on the Observation.
    ``absent``: Prometheus has no such series at all (as opposed to a bad one)."""

    def __init__(self, reason: str, absent: bool = False) -> None:
        super().__init__(reason)
        self.absent = absent


@dataclass(frozen=True)
class CounterWindow:
    """A counter read at every step of the window: per-step increases and their total."""

    increases: tuple[float, ...]
    total: float
    partial_reason: str | None = None


def counter_window(series: Sequence[Series], what: str, start_s: float, end_s: float, step_s: float) -> CounterWindow:
    """Increases of one summed counter between consecutive steps of [start_s, end_s].

    Raises :class:`MissingValue` for no series, several series (the model or namespace filter
    matches more than one deployment), NaN or infinite values, and a decrease (a counter reset:
    a frontend restarted or a pod left, so the window's count is unknown)."""
    if not series:
        raise MissingValue(f"no {what} series", absent=True)
    if len(series) > 1:
        groups = ", ".join(sorted(",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) for s in series))
        raise MissingValue(f"{len(series)} {what} series ({groups}); set --model-name to pick one")
    points = series[0].points
    for t, v in points:
        if math.isnan(v):
            raise MissingValue(f"{what} is NaN at {t:.0f}")
        if math.isinf(v):
            raise MissingValue(f"{what} is {'+' if v > 0 else '-'}Inf at {t:.0f}")
    steps = round((end_s - start_s) / step_s)
    by_step: dict[int, float] = {}
    for t, v in points:
        k = round((t - start_s) / step_s)
        if 0 <= k <= steps:
            by_step[k] = v
    if not by_step:
        raise MissingValue(f"no {what} samples in the window")
    partial = None
    first = min(by_step)
    if first > 0:
        partial = f"{what} starts {first * step_s:g} s after the window start"
    increases = []
    last = by_step[first]
    for k in range(1, steps + 1):
        if k <= first:
            increases.append(0.0)
            continue
        value = by_step.get(k, last)  # a missing step (scrape gap): the increase lands on the next one
        if value < last:
            raise MissingValue(f"{what} went down from {last:g} to {value:g} at step {k} (counter reset)")
        increases.append(value - last)
        last = value
    return CounterWindow(tuple(increases), last - by_step[first], partial)


def _buckets(series: Sequence[Series]) -> dict[float, float] | None:
    """``{le: value}`` of one histogram's summed bucket series; None if a bound repeats (the
    filter matches several deployments) or a value is not finite."""
    out: dict[float, float] = {}
    for s in series:
        try:
            le = float(s.labels["le"])
        except (KeyError, ValueError):
            return None
        value = s.points[-1][1] if s.points else math.nan
        if le in out or not math.isfinite(value):
            return None
        out[le] = value
    return out


@dataclass
class PrometheusSource:
    """``MetricsSource`` over Prometheus for one deployment (model name + Dynamo namespace)."""

    api: QueryAPI
    model_name: str | None
    namespace: str | None
    resolution_s: float = 1.0
    _warned: set[str] = field(default_factory=set, init=False, repr=False)

    @classmethod
    def from_config(cls, config: PlannerConfig, environ: Mapping[str, str] | None = None) -> PrometheusSource:
        settings = PrometheusSettings.from_env(config.metric_pulling_prometheus_endpoint, environ)
        return cls(PrometheusHTTP(settings), config.model_name, config.namespace, config.arrival_resolution_s)

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        start_s, end_s = window_start.timestamp(), window_end.timestamp()
        empty = Observation(
            window_start, window_end, None, None, None, None, None, None, arrival_window_s=self.resolution_s
        )
        try:
            return self._observe(empty, start_s, end_s)
        except PrometheusQueryError as exc:
            return replace(empty, quality="error", error=str(exc))

    def _counter(self, metric: str, start_s: float, end_s: float) -> CounterWindow:
        query = promql.series_query(metric, self.model_name, self.namespace)
        series = self.api.query_range(query, start_s, end_s, self.resolution_s)
        return counter_window(series, metric, start_s, end_s, self.resolution_s)

    def _where(self) -> str:
        return f"model={self.model_name or '(any)'}, dynamo_namespace={self.namespace or '(any)'}"

    def _observe(self, empty: Observation, start_s: float, end_s: float) -> Observation:
        notes: list[str] = []
        try:
            requests_ = self._counter(promql.REQUESTS_STARTED, start_s, end_s)
        except MissingValue as started_missing:
            if not started_missing.absent:
                return replace(empty, quality="no_data", error=str(started_missing))
            try:
                requests_ = self._counter(promql.REQUESTS_FINISHED, start_s, end_s)
            except MissingValue as exc:
                return replace(
                    empty,
                    quality="no_data",
                    error=f"{started_missing} and {exc} for {self._where()}: is the frontend scraped, "
                    "and are --model-name / --namespace right?",
                )
            if "requests_total" not in self._warned:
                self._warned.add("requests_total")
                log.warning("%s not exported; counting finished requests (%s)", promql.REQUESTS_STARTED, self._where())
        if requests_.partial_reason:
            notes.append(requests_.partial_reason)
        counter = promql.REQUESTS_FINISHED if "requests_total" in self._warned else promql.REQUESTS_STARTED
        sample_time, gone = self._newest_sample(counter)
        if gone is not None:
            return replace(empty, quality="stale", error=gone)

        means: dict[str, float | None] = {}
        for name, base, scale in (
            ("ttft_ms", promql.TTFT, 1000.0),
            ("itl_ms", promql.ITL, 1000.0),
            ("request_duration_s", promql.REQUEST_DURATION, 1.0),
            ("isl", promql.ISL, 1.0),
            ("osl", promql.OSL, 1.0),
        ):
            try:
                total = self._counter(base + "_sum", start_s, end_s)
                count = self._counter(base + "_count", start_s, end_s)
            except MissingValue as exc:
                means[name] = None
                notes.append(f"{name}: {exc}")
                continue
            # No request reached this stage in the window: the mean is undefined, not missing.
            means[name] = total.total / count.total * scale if count.total > 0 else None

        queued = self._gauge(promql.QUEUED_REQUESTS, end_s)
        inflight = self._gauge(promql.INFLIGHT_REQUESTS, end_s)

        isl_histogram = self._isl_histogram(start_s, end_s)
        missing_means = [n for n in means if means[n] is None and any(note.startswith(n + ":") for note in notes)]
        quality = "partial" if missing_means or requests_.partial_reason else "ok"
        return replace(
            empty,
            num_req=requests_.total,
            ttft_ms=means["ttft_ms"],
            itl_ms=means["itl_ms"],
            isl=means["isl"],
            osl=means["osl"],
            request_duration_s=means["request_duration_s"],
            quality=quality,
            error="; ".join(notes) or None,
            arrival_counts=tuple(round(c) for c in requests_.increases),
            arrival_window_s=self.resolution_s,
            queued_requests=queued,
            inflight_requests=inflight,
            sample_time=sample_time,
            isl_histogram=isl_histogram,
        )

    def _gauge(self, name: str, at_s: float) -> float | None:
        """An optional gauge of the frontend at ``at_s`` (queued, in-flight requests); None when it
        is not exported or not one finite series: the window's other values stand without it."""
        try:
            found = self.api.query(promql.series_query(name, self.model_name, self.namespace), at_s)
        except PrometheusQueryError:
            return None
        if len(found) == 1 and found[0].points and math.isfinite(found[0].points[-1][1]):
            return found[0].points[-1][1]
        return None

    def _isl_histogram(self, start_s: float, end_s: float) -> tuple[tuple[float, float], ...] | None:
        """The window's ISL histogram: each ``le`` bucket's counter at the end minus at the start
        (instant queries). None when it cannot be read whole: no buckets, a bucket missing at
        one end, several deployments, a non-finite value or a counter reset. Optional: the rest
        of the observation stands without it."""
        query = promql.bucket_query(promql.ISL, self.model_name, self.namespace)
        try:
            at_start = _buckets(self.api.query(query, start_s))
            at_end = _buckets(self.api.query(query, end_s))
        except PrometheusQueryError:
            return None
        if not at_start or not at_end or set(at_start) != set(at_end):
            return None
        out = []
        for le in sorted(at_end):
            increase = at_end[le] - at_start[le]
            if increase < 0:
                return None
            out.append((le, increase))
        return tuple(out) if math.isinf(out[-1][0]) else None

    def _newest_sample(self, metric: str) -> tuple[datetime | None, str | None]:
        """When the counter's newest sample was taken, asked at Prometheus's own current time (so a
        planner clock that jumped either way shows). Returns (time, None), or (None, why) when
        Prometheus holds no current sample of a series the window has: the frontend is no longer
        scraped (target down or gone; Prometheus marks its series stale), so the window's tail
        is missing."""
        found = self.api.query(promql.series_query(metric, self.model_name, self.namespace, newest_sample=True), None)
        # a time before 1970 or after 9999 is no sample time (datetime cannot even hold the latter)
        stamps = [s.points[-1][1] for s in found if s.points and 0 <= s.points[-1][1] < MAX_UNIX_S]
        if not stamps:
            return None, (
                f"stale metrics: Prometheus holds no current sample of {metric} for {self._where()} "
                "(the frontend is no longer scraped: target down or removed); holding replicas"
            )
        return datetime.fromtimestamp(max(stamps), UTC), None

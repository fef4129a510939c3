"""A simulated Dynamo frontend: ``/metrics`` with the real frontend's names, types, labels and
histogram buckets, fed by the cluster simulator's requests.

* :class:`FrontendRecorder` turns the simulator's event log into the frontend's counters,
  gauges and histograms as of a time ``t`` (events strictly before ``t``), observed where the
  real frontend observes them (see :mod:`planner_core.metrics.simulated`).
* :class:`FrontendCollector` serves the recorder through ``prometheus-client``.
* :class:`SimFrontendServer` runs the simulator in real time or ``speed`` times faster and
  serves ``/metrics`` over HTTP; another thread or process can change the replicas through
  :meth:`SimFrontendServer.set_targets` (``sla-planner sim-frontend``).
* :class:`ScrapeStore` and :class:`ExporterFrontend` run the exporter-and-query path in
  process for the replay: scrape the exposition text every ``resolution_s``, keep the samples,
  and answer the Prometheus source's range queries with Prometheus's selection rule (latest
  sample at or before each step, within the 5-minute lookback).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from planner_core.metrics import promql
from planner_core.metrics.prometheus import PrometheusSource, Series
from planner_core.metrics.promql import SeriesQuery
from planner_core.records import Observation, Replicas
from planner_core.sim.cluster import ClusterSimulator, EventLog

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ENDPOINT = "chat_completions"
REQUEST_TYPE = "stream"
LOOKBACK_S = 300.0  # Prometheus's default query lookback delta


def round_sig(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant figures, halves away from zero."""
    if value == 0:
        return 0.0
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(abs(value))))
    return math.copysign(math.floor(abs(value) * scale + 0.5), value) / scale


def log_buckets(low: float, high: float, count: int) -> tuple[float, ...]:
    """The frontend's histogram bounds: 0, then ``count - 1`` log-spaced values from above
    ``low`` up to ``high`` rounded to 2 significant figures, duplicates removed."""
    if count <= 0:
        return ()
    out = [0.0]
    for i in range(1, count):
        value = math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (count - 1))
        rounded = round_sig(value)
        if rounded != out[-1]:
            out.append(rounded)
    return tuple(out)


# The frontend's defaults (DYN_METRICS_<NAME>_{MIN,MAX,COUNT} change them in Dynamo).
BUCKETS = {
    promql.REQUEST_DURATION: log_buckets(1.0, 512.0, 10),
    promql.ISL: log_buckets(50.0, 128000.0, 12),
    promql.OSL: log_buckets(50.0, 32000.0, 10),
    promql.TTFT: log_buckets(0.001, 480.0, 18),
    promql.ITL: log_buckets(0.001, 2.0, 13),
}
HELP = {
    promql.REQUEST_DURATION: "Duration of LLM requests",
    promql.ISL: "Input sequence length in tokens",
    promql.OSL: "Output sequence length in tokens",
    promql.TTFT: "Time to first token in seconds",
    promql.ITL: "Inter-token latency in seconds",
}


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * (len(bounds) + 1)  # last: above every bound (+Inf only)
        self.total = 0.0

    def observe(self, value: float, times: float = 1.0) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0.0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(float(bound)), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class FrontendRecorder:
    """The frontend's metric values as of a time, from the simulator's event log."""

    def __init__(self, log: EventLog, model: str = DEFAULT_MODEL) -> None:
        self.log = log
        self.model = model
        self.as_of_s = 0.0
        self.started = 0
        self.first_tokens = 0
        self.finished = 0
        self.output_tokens = 0.0
        self.histograms = {name: _Histogram(bounds) for name, bounds in BUCKETS.items()}
        self._cursor = {"arrival": 0, "first": 0, "finish": 0}

    def advance(self, t_s: float) -> None:
        """Take in every event before ``t_s`` (the simulator must have reached ``t_s``)."""
        if t_s < self.as_of_s:
            raise ValueError(f"the recorder cannot go back in time: at {self.as_of_s} s, asked {t_s} s")
        log, h = self.log, self.histograms
        hi = bisect_left(log.arrival_s, t_s)
        self.started += max(0, hi - self._cursor["arrival"])
        self._cursor["arrival"] = max(hi, self._cursor["arrival"])

        lo, hi = self._cursor["first"], bisect_left(log.first_token_s, t_s)
        ttft, isl = h[promql.TTFT], h[promql.ISL]
        for i in range(lo, hi):
            ttft.observe(log.first_token_ttft_ms[i] / 1000.0)
            isl.observe(log.first_token_isl[i])
        self.first_tokens += hi - lo
        self._cursor["first"] = hi

        lo, hi = self._cursor["finish"], bisect_left(log.finish_s, t_s)
        itl, osl, dur = h[promql.ITL], h[promql.OSL], h[promql.REQUEST_DURATION]
        for i in range(lo, hi):
            tokens = log.finish_osl[i]
            itl.observe(log.finish_itl_ms[i] / 1000.0, tokens)  # one observation per output token
            osl.observe(tokens)
            dur.observe(log.finish_duration_s[i])
            self.output_tokens += tokens
        self.finished += hi - lo
        self._cursor["finish"] = hi
        self.as_of_s = t_s

    def families(self) -> list[Metric]:
        """The frontend's metric families (prometheus-client objects)."""
        model = [self.model]
        started = CounterMetricFamily(
            promql.REQUESTS_STARTED,
            "Total number of LLM requests accepted by the frontend handler",
            labels=["model", "endpoint", "request_type"],
        )
        started.add_metric([self.model, ENDPOINT, REQUEST_TYPE], self.started)
        total = CounterMetricFamily(
            promql.REQUESTS_FINISHED,
            "Total number of LLM requests processed",
            labels=["model", "endpoint", "request_type", "status", "error_type"],
        )
        total.add_metric([self.model, ENDPOINT, REQUEST_TYPE, "success", ""], self.finished)
        inflight = GaugeMetricFamily(promql.INFLIGHT_REQUESTS, "Number of inflight requests", labels=["model"])
        inflight.add_metric(model, self.started - self.finished)
        queued = GaugeMetricFamily(
            promql.QUEUED_REQUESTS, "Number of requests in HTTP processing queue", labels=["model"]
        )
        queued.add_metric(model, self.started - self.first_tokens)
        disconnected = GaugeMetricFamily(promql.PREFIX + "disconnected_clients", "Number of disconnected clients")
        disconnected.add_metric([], 0)
        tokens = CounterMetricFamily(
            promql.PREFIX + "output_tokens_total",
            "Total number of output tokens generated (updates in real-time)",
            labels=["model"],
        )
        tokens.add_metric(model, self.output_tokens)
        out: list[Metric] = [started, total, inflight, queued, disconnected, tokens]
        for name, hist in self.histograms.items():
            family = HistogramMetricFamily(name, HELP[name], labels=["model"])
            family.add_metric(model, hist.cumulative(), sum_value=hist.total)
            out.append(family)
        return out


class FrontendCollector:
    """prometheus-client collector serving a recorder (under ``lock`` when given)."""

    def __init__(self, recorder: FrontendRecorder, lock: threading.Lock | None = None) -> None:
        self.recorder = recorder
        self.lock = lock

    def collect(self) -> Iterator[Metric]:
        if self.lock is None:
            yield from self.recorder.families()
            return
        with self.lock:
            families = self.recorder.families()
        yield from families


def exposition(recorder: FrontendRecorder) -> str:
    """The ``/metrics`` text of the recorder's current values."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrontendCollector(recorder))
    return generate_latest(registry).decode()


# --------------------------------------------------------------------------------------------
# The HTTP server (real time or sped up)
# --------------------------------------------------------------------------------------------


class SimFrontendServer:
    """A simulated Dynamo frontend serving ``/metrics`` while the simulator runs.

    ``speed`` simulated seconds pass per wall second (1 = real time). ``port=0`` picks a free
    port (read :attr:`port` / :attr:`url` after :meth:`start`). Thread-safe: another thread
    (say, a virtual connector's poller) may call :meth:`set_targets` and :meth:`replicas`.
    """

    def __init__(
        self,
        sim: ClusterSimulator,
        *,
        model: str = DEFAULT_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        tick_s: float = 0.1,
        end_s: float | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.sim = sim
        self.recorder = FrontendRecorder(sim.event_log(), model)
        self.host = host
        self.requested_port = port
        self.speed = speed
        self.tick_s = tick_s
        self.end_s = end_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self._wall0 = 0.0
        self.started_at_unix = 0.0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    @property
    def sim_time_s(self) -> float:
        with self._lock:
            return self.recorder.as_of_s

    def start(self) -> SimFrontendServer:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FrontendCollector(self.recorder, self._lock))
        server, _ = start_http_server(self.requested_port, addr=self.host, registry=registry)
        self._server = server
        self.port = int(server.server_address[1])
        self._wall0 = time.monotonic()
        self.started_at_unix = time.time()  # simulated second 0, on the wall clock Prometheus uses
        self._thread = threading.Thread(target=self._run, name="sim-frontend", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            t = (time.monotonic() - self._wall0) * self.speed
            if self.end_s is not None:
                t = min(t, self.end_s)
            with self._lock:
                if t > self.sim.now_s:
                    self.sim.advance_to(t)
                self.recorder.advance(t)

    def set_targets(self, targets: Replicas) -> None:
        """Ask the simulated cluster for ``targets`` now (a pool given as None is unchanged)."""
        with self._lock:
            self.sim.set_targets(targets)

    def replicas(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return self.sim.replicas()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
        self._server = None

    def __enter__(self) -> SimFrontendServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# In process: exporter -> scrape -> query, without a Prometheus server
# --------------------------------------------------------------------------------------------


@dataclass
class _Stored:
    labels: dict[str, str]
    times: list[float]
    values: list[float]


class ScrapeStore:
    """Scraped samples and Prometheus's range-query rule for the source's one query shape,
    ``sum by (model, dynamo_namespace[, le]) (metric{matchers})``.

    ``target_labels`` are added to every sample, as a scrape config's target labels are
    (Dynamo's PodMonitor adds ``dynamo_namespace``)."""

    def __init__(self, target_labels: Mapping[str, str], lookback_s: float = LOOKBACK_S) -> None:
        self.target_labels = dict(target_labels)
        self.lookback_s = lookback_s
        self._series: dict[str, dict[tuple[tuple[str, str], ...], _Stored]] = {}

    def scrape(self, at_s: float, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {**sample.labels, **self.target_labels}
                key = tuple(sorted(labels.items()))
                stored = self._series.setdefault(sample.name, {}).setdefault(key, _Stored(labels, [], []))
                stored.times.append(at_s)
                stored.values.append(float(sample.value))

    def _value_at(self, stored: _Stored, t: float) -> float | None:
        i = bisect_right(stored.times, t + 1e-6) - 1
        if i < 0 or stored.times[i] < t - self.lookback_s:
            return None
        return stored.values[i]

    def query_range(self, query: SeriesQuery, start_s: float, end_s: float, step_s: float) -> list[Series]:
        wanted = dict(query.labels)
        groups: dict[tuple[str, ...], dict[int, float]] = {}
        steps = math.floor((end_s - start_s) / step_s + 1e-9)
        for stored in self._series.get(query.metric, {}).values():
            if any(stored.labels.get(k) != v for k, v in wanted.items()):
                continue
            key = tuple(stored.labels.get(k, "") for k in query.group_by)
            points = groups.setdefault(key, {})
            for k in range(steps + 1):
                value = self._value_at(stored, start_s + k * step_s)
                if value is not None:
                    points[k] = points.get(k, 0.0) + value
        return [
            Series(
                {name: value for name, value in zip(query.group_by, key, strict=True) if value},
                tuple((start_s + k * step_s, v) for k, v in sorted(points.items())),
            )
            for key, points in groups.items()
            if points
        ]

    def query(self, query: SeriesQuery, at_s: float | None) -> list[Series]:
        """An instant query; ``at_s`` None = now, the last scrape."""
        if at_s is None:
            at_s = max((t for kind in self._series.values() for s in kind.values() for t in s.times[-1:]), default=0.0)
        if query.newest_sample:
            return self._newest(query, at_s)
        return self.query_range(query, at_s, at_s, 1.0)

    def _newest(self, query: SeriesQuery, at_s: float) -> list[Series]:
        """``max by (model, dynamo_namespace) (timestamp(metric{...}))`` at ``at_s``."""
        wanted = dict(query.labels)
        newest: dict[tuple[str, ...], float] = {}
        for stored in self._series.get(query.metric, {}).values():
            if any(stored.labels.get(k) != v for k, v in wanted.items()):
                continue
            i = bisect_right(stored.times, at_s + 1e-6) - 1
            if i < 0 or stored.times[i] < at_s - self.lookback_s:
                continue
            key = tuple(stored.labels.get(k, "") for k in promql.GROUP_BY)
            newest[key] = max(newest.get(key, stored.times[i]), stored.times[i])
        return [
            Series({n: v for n, v in zip(promql.GROUP_BY, key, strict=True) if v}, ((at_s, t),))
            for key, t in newest.items()
        ]


class ExporterFrontend:
    """The replay's MetricsSource through the exporter-and-query path (in process): the
    simulator feeds the exporter, a scrape every ``resolution_s`` stores its text, and the
    production :class:`PrometheusSource` queries the scraped samples."""

    def __init__(
        self,
        sim: ClusterSimulator,
        epoch: datetime,
        resolution_s: float,
        model: str | None = None,
        namespace: str = "dynamo",
    ) -> None:
        self.sim = sim
        self.epoch_s = epoch.timestamp()
        self.resolution_s = resolution_s
        self.recorder = FrontendRecorder(sim.event_log(), model or DEFAULT_MODEL)
        self.store = ScrapeStore({promql.NAMESPACE_LABEL: namespace, "job": "dynamo-frontend"})
        self.source = PrometheusSource(self.store, model, namespace, resolution_s)
        self._next_scrape = 0

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        end_s = window_end.timestamp() - self.epoch_s
        while self._next_scrape * self.resolution_s <= end_s + 1e-9:
            t = self._next_scrape * self.resolution_s
            if t > self.sim.now_s:
                self.sim.advance_to(t)
            self.recorder.advance(t)
            self.store.scrape(self.epoch_s + t, exposition(self.recorder))
            self._next_scrape += 1
        return self.source.observe(window_start, window_end)

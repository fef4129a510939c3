"""The fault-injection suite's world (its fixtures are re-exported by tests/faults/conftest.py):
one real Prometheus for the whole suite scraping a scripted
Dynamo frontend, the Kubernetes API stand-in (tests/fake_kube.py) behind the official client,
and a store (SQLite here; PostgreSQL in test_fault_store.py).

Every model the scripted frontend serves is one fault of the metrics (see :func:`render`).
The deployment runs 4 prefill + 4 decode replicas on a budget of 8 GPUs and the steady traffic
needs fewer: a healthy cycle scales down (to 2 + 2, the per-cycle bound), so a cycle that did
not hold on bad data would show at once.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from fake_kube import FakeKube
from kubernetes import client
from prometheus_server import PrometheusServer, ScriptedExporter
from sqlalchemy import text

from planner_core.config import PlannerConfig, make_config
from planner_core.connectors.kubernetes import KubernetesConnector, RetryPolicy
from planner_core.cycle import CycleResult
from planner_core.metrics.prometheus import PrometheusHTTP, PrometheusSettings, PrometheusSource
from planner_core.ports import Clock
from planner_core.records import Replicas
from planner_core.runtime import Ports, open_cycle
from planner_core.safety import scale_down_floor
from planner_core.store import Store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DGD = yaml.safe_load((REPO / "deploy" / "k8s" / "example-dgd.yaml").read_text())
NAMESPACE = "faults"
DGD = "vllm-disagg"
START = Replicas(4, 4)
BUDGET = 8
INTERVAL_S = 4
RATE = 5  # requests per second
HIST = ("time_to_first_token_seconds", "inter_token_latency_seconds", "request_duration_seconds")
# Client-side resilience short enough for a test: 3 attempts, 0.3 s read timeout.
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02, timeout_s=(0.5, 0.3), conflict_attempts=3)

# model -> what its request counter does (the histograms follow it unless said otherwise);
# the example DGD's own model counts like "steady" (for run-once, whose connector checks it)
DGD_MODEL = "Qwen/Qwen3-0.6B"
MODELS = ("steady", "nan", "inf", "reset", "nan-ttft", "inf-itl", DGD_MODEL)


def render(t: float) -> str:
    """The frontend's /metrics at ``t`` seconds: ``steady`` counts RATE requests/s with ISL 1000,
    OSL 100, TTFT 50 ms, ITL 5 ms; ``nan`` / ``inf`` have a NaN / +Inf request counter; ``reset``
    restarts its counter every 3 s (a crash-looping frontend); ``nan-ttft`` / ``inf-itl`` count
    correctly but one latency sum is NaN / +Inf."""
    n = RATE * int(t)
    counters = {m: str(n) for m in MODELS}
    counters["nan"], counters["inf"] = "NaN", "+Inf"
    counters["reset"] = str(RATE * (int(t) % 3))
    lines = ["# TYPE dynamo_frontend_requests_started_total counter"]
    lines += [f'dynamo_frontend_requests_started_total{{model="{m}"}} {v}' for m, v in counters.items()]
    per_request = {
        "time_to_first_token_seconds": 0.05,
        "inter_token_latency_seconds": 0.005,
        "request_duration_seconds": 0.55,
        "input_sequence_tokens": 1000.0,
        "output_sequence_tokens": 100.0,
    }
    for base, each in per_request.items():
        name = f"dynamo_frontend_{base}"
        lines.append(f"# TYPE {name} histogram")
        for m, count in counters.items():
            total = "NaN" if count == "NaN" else "+Inf" if count == "+Inf" else f"{float(count) * each}"
            if m == "nan-ttft" and base.startswith("time_to_first"):
                total = "NaN"
            if m == "inf-itl" and base.startswith("inter_token"):
                total = "+Inf"
            lines += [
                f'{name}_bucket{{model="{m}",le="+Inf"}} {count}',
                f'{name}_sum{{model="{m}"}} {total}',
                f'{name}_count{{model="{m}"}} {count}',
            ]
    return "\n".join(lines) + "\n"


@dataclass
class Metrics:
    prometheus: PrometheusServer
    exporter: ScriptedExporter
    doomed: ScriptedExporter  # a second frontend (namespace "doomed") a test may stop

    started_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return self.prometheus.url

    def wait_for_history(self, seconds: float) -> None:
        """Until Prometheus holds ``seconds`` of samples (plus a scrape)."""
        time.sleep(max(0.0, self.started_at + seconds + 1.5 - time.monotonic()))


@pytest.fixture(scope="session")
def metrics(tmp_path_factory) -> Iterator[Metrics]:
    """One real Prometheus (1 s scrape) for the suite; fails under CI=true without the binary."""
    exporter, doomed = ScriptedExporter(render), ScriptedExporter(render)
    prom = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        [
            (f"127.0.0.1:{exporter.port}", {"dynamo_namespace": NAMESPACE}),
            (f"127.0.0.1:{doomed.port}", {"dynamo_namespace": "doomed"}),
        ],
    )
    try:
        prom.start().wait_for_scrapes()
        world = Metrics(prom, exporter, doomed)
        world.wait_for_history(INTERVAL_S)  # one full window of samples before the first cycle
        yield world
    finally:
        prom.stop()
        exporter.stop()
        doomed.stop()


class SlowProxy:
    """Forwards to Prometheus after ``delay_s``: a Prometheus answering slower than the timeout."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(delay_s)
                try:
                    answer = requests.get(upstream + self.path, timeout=5)
                    self.send_response(answer.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.content)))
                    self.end_headers()
                    self.wfile.write(answer.content)
                except (OSError, requests.RequestException):
                    pass  # the planner gave up long ago

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def source(url: str, model: str, namespace: str = NAMESPACE, timeout_s: float = 2.0) -> PrometheusSource:
    settings = PrometheusSettings.from_env(url, {}, timeout_s=timeout_s, retries=0)
    return PrometheusSource(PrometheusHTTP(settings), model, namespace, 1.0)


def fault_config(model: str = "steady", **overrides: Any) -> PlannerConfig:
    values: dict[str, Any] = dict(
        namespace=NAMESPACE,
        model_name=model,
        adjustment_interval_s=INTERVAL_S,
        arrival_resolution_s=1,
        max_gpu_budget=BUDGET,
        load_predictor="constant",
        dgd_name=DGD,
        kubernetes_namespace="dynamo",
        isl=1000,
        osl=100,
    )
    values.update(overrides)
    return make_config(**values)


def example_dgd(replicas: Replicas = START) -> dict[str, Any]:
    dgd = copy.deepcopy(EXAMPLE_DGD)
    services = dgd["spec"]["services"]
    for service in services.values():
        kind = service.get("subComponentType")
        if kind in ("prefill", "decode"):
            service["replicas"] = getattr(replicas, kind)
    return dgd


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    fake.url = fake.start()  # type: ignore[attr-defined]
    fake.add_dgd(example_dgd())
    yield fake
    fake.stop()


def kube_connector(kube: FakeKube, config: PlannerConfig, retry: RetryPolicy = FAST) -> KubernetesConnector:
    configuration = client.Configuration(host=kube.url)  # type: ignore[attr-defined]
    configuration.retries = False
    return KubernetesConnector(
        config, api_client=client.ApiClient(configuration), namespace="dynamo", retry=retry, sleep=lambda s: None
    )


def cluster_replicas(kube: FakeKube) -> Replicas:
    services = kube.objects[("dynamographdeployments", DGD)]["spec"]["services"]
    by_kind = {s.get("subComponentType"): s.get("replicas") for s in services.values()}
    return Replicas(by_kind.get("prefill"), by_kind.get("decode"))


def patches(kube: FakeKube) -> list[str]:
    return [path for method, path in kube.log if method == "PATCH"]


class ShiftedClock:
    """The wall clock, off by ``offset`` (a clock that jumped)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class World:
    """One deployment's planner over the suite's Prometheus, a fake cluster and a store."""

    metrics: Metrics
    kube: FakeKube
    db_url: str
    deployment: str = "llama"
    results: list[CycleResult] = field(default_factory=list)

    def cycle(
        self,
        model: str = "steady",
        clock: Clock | None = None,
        metrics_source: Any = None,
        config: PlannerConfig | None = None,
        store: Store | None = None,
    ) -> CycleResult:
        config = config or fault_config(model)
        ports = Ports(
            metrics=metrics_source or source(self.metrics.url, model),
            # The scripted frontend's model names are the faults; the DGD serves the example's model.
            connector=kube_connector(self.kube, config.model_copy(update={"model_name": None})),
            clock=clock or ShiftedClock(timedelta(0)),
        )
        own = store is None
        store = store or Store(self.db_url)
        try:
            result = open_cycle(config, self.deployment, store, ports=ports).run()
        finally:
            if own:
                store.close()
        self.results.append(result)
        return result


@pytest.fixture
def world(metrics: Metrics, kube: FakeKube, sqlite_url: str) -> World:
    return World(metrics, kube, sqlite_url)


# -- the invariants every fault test checks --------------------------------------------------------


def rows(db_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    with Store(db_url) as store, store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def assert_audit_complete(db_url: str, runs: int) -> list[dict[str, Any]]:
    """``runs`` cycles recorded, each finished, none half-written: every run has an end and a
    status; every decision its observation; every scaling request its outcome; no decision over
    the budget. Returns the runs, oldest first."""
    found = rows(db_url, "SELECT * FROM planner_runs ORDER BY id")
    assert len(found) == runs, found
    for run in found:
        assert run["status"] not in (None, "running") and run["ended_at"] is not None, run
    orphans = rows(
        db_url,
        "SELECT d.id FROM decisions d LEFT JOIN observations o ON o.run_id = d.run_id WHERE o.id IS NULL",
    )
    assert orphans == [], "a decision without its observation"
    assert rows(db_url, "SELECT id FROM scaling_actions WHERE outcome = 'pending'") == []
    over = rows(db_url, "SELECT id, total_gpus FROM decisions WHERE total_gpus > max_gpu_budget")
    assert over == [], over
    return found


def assert_held(before: Replicas, after: Replicas) -> None:
    """Never reduced on missing or invalid data."""
    assert after.prefill is not None and before.prefill is not None and after.prefill >= before.prefill
    assert after.decode is not None and before.decode is not None and after.decode >= before.decode


def assert_within_budget(replicas: Replicas, budget: int = BUDGET) -> None:
    assert (replicas.prefill or 0) + (replicas.decode or 0) <= budget


def assert_recovered(result: CycleResult, kube: FakeKube, before: Replicas = START) -> None:
    """The next healthy cycle acts by itself: it scales the over-provisioned pools down from
    ``before``, by at most the per-cycle bound (4 -> 2)."""
    assert result.status == "ok", (result.status, result.error, result.notes)
    assert result.observation is not None and result.observation.quality == "ok", result.observation
    decision = result.decision
    assert decision is not None and decision.action == "scale"
    assert decision.metrics_age_s is not None and abs(decision.metrics_age_s) <= decision.max_metrics_age_s
    now = cluster_replicas(kube)
    assert now == decision.targets and now.prefill is not None and now.decode is not None
    floor = Replicas(scale_down_floor(before.prefill, 50), scale_down_floor(before.decode, 50))
    assert now.prefill >= (floor.prefill or 0) and now.decode >= (floor.decode or 0), "over the per-cycle bound"
    if before == START:  # the sizing wants 1 + 1: the bound bites
        assert decision.scale_down_limited and now == Replicas(2, 2), decision.reason
    assert_within_budget(now)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)

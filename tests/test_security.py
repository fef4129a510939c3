"""Least privilege and no leaks (issue 16, part 4).

* Hostile model and namespace names cannot change a PromQL query (checked on the query text and
  against a real Prometheus) or an SQL statement (round trip through SQLite and PostgreSQL).
* No credential - the database password, ``PROMETHEUS_TOKEN``, a basic-auth password in the
  Prometheus endpoint, the kubeconfig's token - appears in logs, Prefect artifacts and logs, any
  stored row (the stored configuration included) or ``sla-planner history`` output, after full
  cycles with all of them set (one through the Prefect ``plan`` flow, one failing through
  ``sla-planner run-once --log-dir``).
* Every metrics endpoint binds to loopback unless told otherwise.
* A SQLite database is created ``0600`` (checked on the mode bits, so it means the same as root).
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest
import requests
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prometheus_server import PrometheusServer, ScriptedExporter, free_port
from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url

from planner_core.cli import build_parser, main
from planner_core.config import PlannerConfig, config_from_env, make_config
from planner_core.metrics import promql
from planner_core.metrics.prometheus import PrometheusHTTP, PrometheusSettings, PrometheusSource
from planner_core.redaction import redact_argv, redact_config, redact_text, redact_url
from planner_core.store import Store

REPO = Path(__file__).resolve().parents[1]
HOSTILE = [
    'a"}or vector(1)#',
    'x"} or on() vector(1) or {a="',
    "\\",
    'a\\"}',
    "\n}",
    "'; DROP TABLE deployments; --",
    "x') OR 1=1 --",
    "Robert'); DELETE FROM planner_runs;--",
    '"; SELECT pg_sleep(5); --',
    "名前\x00with nul",
    "%s %(x)s {0} $1 ?",
]

# --------------------------------------------------------------------------------------------
# PromQL
# --------------------------------------------------------------------------------------------

_GO_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _go_unquote(text: str, start: int) -> tuple[str, int]:
    """Decode the double-quoted PromQL (Go) string literal opening at ``text[start]``: its value
    and the index just past its closing quote."""
    assert text[start] == '"'
    out, i = [], start + 1
    while text[i] != '"':
        ch = text[i]
        assert ch != "\n", "a raw newline inside a PromQL string literal"
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        code = text[i + 1]
        if code == "x":
            out.append(chr(int(text[i + 2 : i + 4], 16)))
            i += 4
        else:
            out.append(_GO_ESCAPES[code])
            i += 2
    return "".join(out), i + 1


def _label_values(query: str) -> tuple[str, dict[str, str]]:
    """The query with every label value replaced by ``V``, and the decoded values by label."""
    values: dict[str, str] = {}
    template, i = [], 0
    while i < len(query):
        if query[i] == '"':
            name = "".join(template).rsplit("{", 1)[-1].rsplit(",", 1)[-1].rstrip("=")
            values[name], i = _go_unquote(query, i)
            template.append("V")
        else:
            template.append(query[i])
            i += 1
    return "".join(template), values


@given(model=st.text(), namespace=st.text())
def test_any_model_and_namespace_stay_inside_their_string_literals(model, namespace):
    for metric in (promql.REQUESTS_STARTED, promql.TTFT + "_sum", promql.QUEUED_REQUESTS):
        query = promql.series_query(metric, model, namespace).promql
        template, values = _label_values(query)
        expected = {k: v for k, v in (("model", model), ("dynamo_namespace", namespace)) if v}
        assert values == expected
        matcher = ",".join(f"{k}=V" for k in sorted(expected))
        assert template == f"sum by (model, dynamo_namespace) ({metric}{'{' + matcher + '}' if matcher else ''})"


@pytest.mark.prometheus
def test_hostile_names_cannot_change_what_a_real_prometheus_answers(tmp_path):
    """A real Prometheus with one series: an injected ``or vector(1)`` would return a series;
    every hostile name must parse and match nothing."""
    exporter = ScriptedExporter(lambda t: 'dynamo_frontend_requests_started_total{model="real"} 5\n')
    prom = PrometheusServer(tmp_path / "prom", [(f"127.0.0.1:{exporter.port}", {"dynamo_namespace": "dynamo"})])
    prom.start()
    try:
        prom.wait_for_scrapes()
        api = PrometheusHTTP(PrometheusSettings.from_env(prom.url, {}))
        now = time.time()
        real = api.query(promql.series_query(promql.REQUESTS_STARTED, "real", "dynamo"), now)
        assert len(real) == 1 and real[0].points[0][1] == 5.0
        for name in HOSTILE:
            for model, namespace in ((name, "dynamo"), ("real", name), (name, name)):
                found = api.query(promql.series_query(promql.REQUESTS_STARTED, model, namespace), now)
                assert found == [], (model, namespace, found)
    finally:
        prom.stop()
        exporter.stop()


# --------------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------------


def test_hostile_names_are_stored_and_read_back_as_data(db_url, capsys):
    from datetime import UTC, datetime, timedelta

    with Store(db_url, check_schema=False) as fresh:
        fresh.upgrade()
    store = Store(db_url)
    try:
        ids = {}
        for i, name in enumerate(HOSTILE):
            name = name.replace("\x00", "")  # PostgreSQL text holds no NUL; the names keep the rest
            ids[name] = store.ensure_deployment(name, f"ns-{name}", f"model-{name}", "vllm", "disagg")
            started = datetime.now(UTC) - timedelta(minutes=i + 1)
            run = store.begin_run(ids[name], "manual", make_config().model_dump(mode="json"), started, None, name)
            store.finish_run(run, "ok", started, name)
        assert len(set(ids.values())) == len(HOSTILE)
        for name, dep_id in ids.items():
            assert store.deployment_id(name, f"ns-{name}") == dep_id
        counts = store.table_counts()
        assert counts["deployments"] == len(HOSTILE) and counts["planner_runs"] == len(HOSTILE)
    finally:
        store.close()
    for name in ids:
        assert main(["history", "--db-url", db_url, "--deployment", f"ns-{name}/{name}", "--json"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    with Store(db_url) as store:  # every table still there, every row still there
        assert store.table_counts()["deployments"] == len(HOSTILE)


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------

SECRETS = {
    "database password": "dbpw-Zq81kL",
    "PROMETHEUS_TOKEN": "promtok-Xy72mN",
    "Prometheus basic-auth password": "basicpw-Ur54pQ",
    "kubeconfig token": "kubetok-Wv63rS",
}


def test_redaction_helpers():
    assert redact_url("postgresql://planner:pw@db:5432/p") == "postgresql://planner:***@db:5432/p"
    assert redact_url("postgresql://db/p?user=a&password=pw&sslmode=require") == (
        "postgresql://db/p?user=a&password=***&sslmode=require"
    )
    assert redact_url("http://prometheus:9090") == "http://prometheus:9090"
    assert redact_argv(["history", "--db-url", "postgresql://u:pw@h/d", "--x=https://a:pw@b"]) == [
        "history",
        "--db-url",
        "postgresql://u:***@h/d",
        "--x=https://a:***@b",
    ]
    assert redact_argv(["--db-url=postgresql://u:pw@h/d"]) == ["--db-url=postgresql://u:***@h/d"]
    assert redact_text("cannot reach http://u:pw@h:1/x (refused)") == "cannot reach http://u:***@h:1/x (refused)"
    stored = redact_config(make_config(metric_pulling_prometheus_endpoint="http://u:pw@p:9090").model_dump())
    assert stored["metric_pulling_prometheus_endpoint"] == "http://u:***@p:9090"


def _frontend(t: float) -> str:
    n = int(10 * t)
    lines = [f'dynamo_frontend_requests_started_total{{model="Qwen/Qwen3-0.6B"}} {n}']
    for base in ("time_to_first_token_seconds", "inter_token_latency_seconds", "request_duration_seconds"):
        lines += [
            f'dynamo_frontend_{base}_sum{{model="Qwen/Qwen3-0.6B"}} {n * 0.05}',
            f'dynamo_frontend_{base}_count{{model="Qwen/Qwen3-0.6B"}} {n}',
        ]
    for base, mean in (("input_sequence_tokens", 3000), ("output_sequence_tokens", 150)):
        lines += [
            f'dynamo_frontend_{base}_sum{{model="Qwen/Qwen3-0.6B"}} {n * mean}',
            f'dynamo_frontend_{base}_count{{model="Qwen/Qwen3-0.6B"}} {n}',
        ]
    return "\n".join(lines) + "\n"


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": SECRETS["kubeconfig token"]}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "dynamo"}}],
                "current-context": "x",
            }
        )
    )
    return path


class _Everything(logging.Handler):
    """Every log record of the process, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _all_rows(url: str) -> list[str]:
    """Every row of every table of the planner database, as text."""
    store = Store(url, check_schema=False)
    try:
        meta = MetaData()
        meta.reflect(store.engine)
        with store.engine.connect() as conn:
            return [
                f"{table.name}: {tuple(row)}" for table in meta.sorted_tables for row in conn.execute(select(table))
            ]
    finally:
        store.close()


def _leaks(where: str, texts: list[str]) -> list[str]:
    return [f"{what} in {where}: {text[:200]!r}" for text in texts for what, s in SECRETS.items() if s in text]


@pytest.mark.postgres
@pytest.mark.prometheus
@pytest.mark.prefect
def test_no_credential_in_logs_artifacts_stored_rows_or_history(
    prefect_harness, postgres_url, tmp_path, monkeypatch, capsys
):
    from fake_kube import FakeKube
    from prefect.client.orchestration import get_client

    from flows.plan import plan

    db_url = make_url(postgres_url).set(password=SECRETS["database password"]).render_as_string(hide_password=False)
    assert SECRETS["database password"] in db_url  # the server trusts local users: the password goes unused
    exporter = ScriptedExporter(_frontend)
    prom = PrometheusServer(tmp_path / "prom", [(f"127.0.0.1:{exporter.port}", {"dynamo_namespace": "dynamo"})])
    prom.start()
    kube = FakeKube()
    kube_url = kube.start()
    dgd = yaml.safe_load((REPO / "deploy" / "k8s" / "example-dgd.yaml").read_text())
    kube.add_dgd(copy.deepcopy(dgd))
    handler = _Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    log_dir = tmp_path / "logs"
    try:
        prom.wait_for_scrapes()
        endpoint = prom.url.replace("http://", f"http://planner:{SECRETS['Prometheus basic-auth password']}@")
        env = {
            "PLANNER_DB_URL": db_url,
            "PROMETHEUS_ENDPOINT": endpoint,
            "PROMETHEUS_TOKEN": SECRETS["PROMETHEUS_TOKEN"],
            "KUBECONFIG": str(_kubeconfig(tmp_path / "kubeconfig", kube_url)),
            "DYN_PARENT_DGD_K8S_NAME": dgd["metadata"]["name"],
            "PLANNER_KUBERNETES_NAMESPACE": "dynamo",
            "PLANNER_LOAD_PREDICTOR": "constant",
            "PLANNER_ADJUSTMENT_INTERVAL_S": "60",
            "PLANNER_LOG_DIR": str(log_dir),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert main(["db", "upgrade"]) == 0

        # 1. a scheduled cycle through the Prefect plan flow: Prometheus answers, the DGD is scaled
        state = plan(deployment="qwen", settings=PlannerConfig.model_validate({}), return_state=True)
        assert state.is_completed(), state.message
        assert kube.log, "the connector never called the API server"

        # 2. the same deployment from the command line with Prometheus down (the endpoint, with its
        # password, is in the error message that is stored and logged)
        down = f"http://planner:{SECRETS['Prometheus basic-auth password']}@127.0.0.1:{free_port()}"
        code = main(["run-once", "--deployment", "qwen", "--metric-pulling-prometheus-endpoint", down,
                     "--db-url", db_url, "--log-dir", str(log_dir)])  # fmt: skip
        assert code in (0, 1)
        outputs = [capsys.readouterr()]
        for fmt in ([], ["--json"], ["--csv"]):
            assert main(["history", "--deployment", "qwen", "--db-url", db_url, *fmt]) == 0
            outputs.append(capsys.readouterr())
        assert main(["db", "current", "--db-url", db_url]) == 0
        outputs.append(capsys.readouterr())
        cli_text = [o.out + o.err for o in outputs]
        assert any("cannot reach Prometheus" in t for t in _all_rows(postgres_url)), "the failing cycle was not stored"

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
            artifacts = client.read_artifacts()
            deadline = time.monotonic() + 30  # run logs reach the server in batches
            while not (prefect_logs := client.read_logs()) and time.monotonic() < deadline:
                time.sleep(0.5)
        prefect_text = [json.dumps(r.parameters, default=str) for r in runs]
        prefect_text += [f"{a.key} {a.description} {a.data}" for a in artifacts]
        prefect_text += [entry.message for entry in prefect_logs]
        assert artifacts and prefect_logs
        log_file = (log_dir / "sla-planner.log").read_text()
        assert "run-once" in log_file
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        planner_logger = logging.getLogger("sla_planner")
        for h in [h for h in planner_logger.handlers if isinstance(h, logging.FileHandler)]:
            if Path(h.baseFilename).is_relative_to(tmp_path):
                planner_logger.removeHandler(h)
                h.close()
        prom.stop()
        exporter.stop()
        kube.stop()
    rows = _all_rows(postgres_url)
    assert any("planner_configs" in r for r in rows)
    leaks = (
        _leaks("the process's log records", handler.lines)
        + _leaks("the --log-dir file", [log_file])
        + _leaks("Prefect (parameters, artifacts, logs)", prefect_text)
        + _leaks("the database", rows)
        + _leaks("CLI output (run-once, history, db current)", cli_text)
    )
    assert not leaks, "\n".join(leaks)


# --------------------------------------------------------------------------------------------
# Listening sockets and file modes
# --------------------------------------------------------------------------------------------


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if len(addr) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
                else:
                    found.add("::1" if addr == "00000000000000000000000001000000" else addr)
    return found


def test_metrics_endpoints_bind_to_loopback_by_default():
    from planner_core.metrics.exporter import SimFrontendServer
    from planner_core.metrics.planner_metrics import PlannerMetrics, serve_if_configured
    from planner_core.metrics.store_exporter import serve_store

    assert config_from_env({}).metric_reporting_prometheus_address == "127.0.0.1"
    # the planner's own metrics, as the plan flow and run-once serve them
    port = free_port()
    assert serve_if_configured(make_config(metric_reporting_prometheus_port=port)) == port
    assert _listen_addresses(port) == {"127.0.0.1"}
    assert "planner_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    metrics = PlannerMetrics()
    own = metrics.serve(0)
    try:
        assert _listen_addresses(own) == {"127.0.0.1"}
    finally:
        metrics.stop()
    # `sla-planner exporter` (the store's metrics)
    store = Store("sqlite:///:memory:")
    config = config_from_env({}, metric_reporting_prometheus_port=free_port())
    server, bound = serve_store(
        store, config.metric_reporting_prometheus_port, config.metric_reporting_prometheus_address
    )
    try:
        assert _listen_addresses(bound) == {"127.0.0.1"}
    finally:
        server.shutdown()
        server.server_close()
        store.close()
    # the simulated frontend (sla-planner sim-frontend / sim-cluster)
    assert inspect.signature(SimFrontendServer).parameters["host"].default == "127.0.0.1"
    parser = build_parser()
    sim_frontend = parser._subparsers._group_actions[0].choices["sim-frontend"]  # type: ignore[union-attr]
    assert sim_frontend.get_default("bind") == "127.0.0.1"


def test_sqlite_database_is_created_owner_only(tmp_path, capsys):
    """Mode bits, not access checks: root reads any file, so only the bits say who may."""
    previous = os.umask(0)  # even a permissive umask gives 0600
    try:
        path = tmp_path / "planner.db"
        with Store(f"sqlite:///{path}") as store:
            store.ensure_deployment("d", "ns", None, "vllm", "disagg")
            files = sorted(tmp_path.iterdir())
            assert {f.name for f in files} >= {"planner.db", "planner.db-wal", "planner.db-shm"}
            for f in files:
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f.name, oct(f.stat().st_mode))
        cli_db = tmp_path / "cli" / "p.db"
        cli_db.parent.mkdir()
        assert main(["db", "upgrade", "--db-url", f"sqlite:///{cli_db}"]) == 0
        assert stat.S_IMODE(cli_db.stat().st_mode) == 0o600
        # an existing file keeps the mode its owner gave it
        shared = tmp_path / "shared.db"
        shared.touch(mode=0o640)
        os.chmod(shared, 0o640)
        with Store(f"sqlite:///{shared}"):
            pass
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(previous)
    capsys.readouterr()


def test_prometheus_messages_never_show_the_endpoint_password():
    settings = PrometheusSettings.from_env(f"http://u:secretpw@127.0.0.1:{free_port()}", {}, retries=0, timeout_s=1)
    source = PrometheusSource(PrometheusHTTP(settings), "m", "ns")
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC)
    obs = source.observe(end - timedelta(seconds=60), end)
    assert obs.quality == "error" and "cannot reach Prometheus at http://u:***@127.0.0.1" in (obs.error or "")
    assert "secretpw" not in (obs.error or "")
    buf = io.StringIO()
    with pytest.raises(Exception) as info:
        PrometheusSettings.from_env("ftp://u:secretpw@x", {})
    buf.write(str(info.value))
    with pytest.raises(Exception) as info:
        PrometheusSettings.from_env("http://p", {"PROMETHEUS_EXTRA_QUERY_PARAMS": "tenant_token=secretpw&bad"})
    buf.write(str(info.value))
    assert "secretpw" not in buf.getvalue()

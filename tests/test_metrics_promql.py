"""PromQL strings, label escaping and Prometheus answer parsing (no server)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from planner_core.config import ConfigError, make_config
from planner_core.metrics import promql
from planner_core.metrics.exporter import ScrapeStore
from planner_core.metrics.prometheus import (
    MissingValue,
    PrometheusQueryError,
    PrometheusSettings,
    PrometheusSource,
    Series,
    counter_window,
    parse_response,
)

HOSTILE = 'a"}or vector(1)#'


def test_series_query_filters_by_model_and_namespace():
    q = promql.series_query(promql.REQUESTS_STARTED, "llama", "ns-1")
    assert q.promql == (
        "sum by (model, dynamo_namespace) "
        '(dynamo_frontend_requests_started_total{dynamo_namespace="ns-1",model="llama"})'
    )


def test_series_query_without_model_sums_every_model_of_the_namespace():
    q = promql.series_query(promql.TTFT + "_sum", None, "dynamo")
    assert q.promql == (
        'sum by (model, dynamo_namespace) (dynamo_frontend_time_to_first_token_seconds_sum{dynamo_namespace="dynamo"})'
    )


def test_dynamo_mean_formula_for_reference():
    assert promql.dynamo_mean_query(promql.ITL, 180, "m", "d") == (
        "sum by (model, dynamo_namespace) "
        '(increase(dynamo_frontend_inter_token_latency_seconds_sum{dynamo_namespace="d",model="m"}[180s]))'
        " / sum by (model, dynamo_namespace) "
        '(increase(dynamo_frontend_inter_token_latency_seconds_count{dynamo_namespace="d",model="m"}[180s]))'
    )


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (HOSTILE, 'a\\"}or vector(1)#'),
        ("back\\slash", "back\\\\slash"),
        ('\\"', '\\\\\\"'),
        ("line\nbreak\ttab\rcr", "line\\nbreak\\ttab\\rcr"),
        ("nul\x00bell\x07del\x7f", "nul\\x00bell\\x07del\\x7f"),
        ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B"),
        ("ünïcode-模型", "ünïcode-模型"),
    ],
)
def test_label_values_are_escaped(raw, escaped):
    assert promql.escape_label_value(raw) == escaped


def _literal_end(text: str, start: int) -> int:
    """Index of the double quote closing the PromQL string literal opened at ``start``."""
    i = start + 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i


@pytest.mark.parametrize("name", [HOSTILE, 'x"} or on() vector(1) or {a="', "\\", 'a\\"}', "\n}"])
def test_a_hostile_model_name_stays_inside_its_string_literal(name):
    q = promql.series_query(promql.REQUESTS_STARTED, name, "ns").promql
    start = q.index('model="') + len("model=")
    end = _literal_end(q, start)
    # the literal runs to the matcher's end, and the query outside it is the fixed template
    assert q[end:] == '"})'
    assert (
        q[:start]
        == 'sum by (model, dynamo_namespace) (dynamo_frontend_requests_started_total{dynamo_namespace="ns",model='
    )


def test_bad_label_names_are_refused():
    with pytest.raises(ValueError, match="label name"):
        promql.matchers({"bad-name": "x"})


# --------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------


def _matrix(*series: dict) -> str:
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": list(series)}})


def test_matrix_with_several_series_and_string_numbers():
    body = _matrix(
        {"metric": {"model": "a"}, "values": [[100, "1"], [101.5, "2.5"]]},
        {"metric": {"model": "b"}, "values": [["102", "NaN"], [103, "+Inf"], [104, 7]]},
    )
    out = parse_response(body)
    assert [s.labels for s in out] == [{"model": "a"}, {"model": "b"}]
    assert out[0].points == ((100.0, 1.0), (101.5, 2.5))
    assert out[1].points[0][0] == 102.0 and math.isnan(out[1].points[0][1])
    assert out[1].points[1][1] == math.inf and out[1].points[2][1] == 7.0


def test_vector_and_scalar_answers():
    vec = json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]}}
    )
    assert parse_response(vec) == [Series({}, ((1.0, 3.0),))]
    scalar = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "4"]}})
    assert parse_response(scalar) == [Series({}, ((1.0, 4.0),))]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>not json", "not JSON"),
        ("[1, 2]", "not an object"),
        (json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}), "bad_data"),
        (json.dumps({"status": "success"}), "no data.result"),
        (json.dumps({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}), "result type"),
        (_matrix({"metric": {}, "values": [[1, "twelve"]]}), "'twelve' is not a number"),
        (_matrix({"metric": {}, "values": [[1]]}), "[timestamp, value]"),
        (_matrix({"metric": {}, "values": [[1, True]]}), "boolean"),
        (_matrix({"metric": {}, "values": [[1, None]]}), "NoneType"),
        (_matrix({"metric": [], "values": []}), "labels"),
        (_matrix({"metric": {}}), "no values list"),
    ],
)
def test_malformed_answers_name_the_problem(body, message):
    with pytest.raises(PrometheusQueryError, match=message.replace("[", "\\[").replace("(", "\\(")):
        parse_response(body)


# --------------------------------------------------------------------------------------------
# Counter windows
# --------------------------------------------------------------------------------------------


def _series(*values: float, start: float = 0.0, step: float = 1.0) -> list[Series]:
    return [Series({"model": "m"}, tuple((start + i * step, v) for i, v in enumerate(values)))]


def test_counter_window_gives_per_step_increases_and_their_total():
    w = counter_window(_series(10, 12, 12, 15), "c", 0, 3, 1)
    assert w.increases == (2, 0, 3) and w.total == 5 and w.partial_reason is None


def test_counter_window_carries_a_missing_step_to_the_next():
    series = [Series({}, ((0.0, 1.0), (1.0, 2.0), (3.0, 6.0)))]
    assert counter_window(series, "c", 0, 3, 1).increases == (1, 0, 4)


def test_counter_window_that_starts_late_is_partial():
    series = [Series({}, ((2.0, 5.0), (3.0, 6.0)))]
    w = counter_window(series, "c", 0, 3, 1)
    assert w.total == 1 and w.partial_reason and "2 s after" in w.partial_reason


@pytest.mark.parametrize(
    ("series", "reason"),
    [
        ([], "no c series"),
        ([*_series(1, 2), Series({"model": "x"}, ((0.0, 1.0),))], "2 c series"),
        (_series(1, math.nan), "NaN"),
        (_series(1, math.inf), "+Inf"),
        (_series(5, 7, 2), "counter reset"),
    ],
)
def test_counter_window_missing_values_say_why(series, reason):
    with pytest.raises(MissingValue, match=reason.replace("+", "\\+")):
        counter_window(series, "c", 0, 2, 1)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
HIST = (promql.TTFT, promql.ITL, promql.REQUEST_DURATION, promql.ISL, promql.OSL)


def _exposition(started: float | None, finished: float = 0.0, hist: tuple[float, float] = (0, 0), skip=()) -> str:
    """Frontend /metrics text: the request counters and each histogram's sum and count."""
    lines = []
    if started is not None:
        lines += [
            "# TYPE dynamo_frontend_requests_started_total counter",
            f'dynamo_frontend_requests_started_total{{model="m",endpoint="chat_completions"}} {started}',
        ]
    lines += [
        "# TYPE dynamo_frontend_requests_total counter",
        f'dynamo_frontend_requests_total{{model="m",status="success"}} {finished}',
    ]
    for base in HIST:
        if base in skip:
            continue
        lines += [
            f"# TYPE {base} histogram",
            f'{base}_bucket{{model="m",le="+Inf"}} {hist[1]}',
            f'{base}_sum{{model="m"}} {hist[0]}',
            f'{base}_count{{model="m"}} {hist[1]}',
        ]
    return "\n".join(lines) + "\n"


def _store(*texts: str, step: float = 5.0) -> ScrapeStore:
    """A scrape store (the replay's in-process Prometheus) that scraped ``texts`` every ``step``."""
    store = ScrapeStore({"dynamo_namespace": "ns"})
    for i, text in enumerate(texts):
        store.scrape(T0.timestamp() + i * step, text)
    return store


def _observe(store: ScrapeStore, model: str | None = "m"):
    return PrometheusSource(store, model, "ns", 5.0).observe(T0, T0 + timedelta(seconds=10))


def test_source_reads_every_value_and_the_arrival_pattern():
    obs = _observe(_store(_exposition(100, 0, (0, 0)), _exposition(103, 1, (2, 4)), _exposition(110, 2, (6, 8))))
    assert obs.quality == "ok" and obs.error is None
    assert obs.num_req == 10 and obs.arrival_counts == (3, 7) and obs.arrival_window_s == 5.0
    assert obs.ttft_ms == pytest.approx(750.0) and obs.itl_ms == pytest.approx(750.0)
    assert obs.isl == pytest.approx(0.75) and obs.request_duration_s == pytest.approx(0.75)


def test_source_falls_back_to_requests_total_when_started_is_not_exported():
    obs = _observe(_store(_exposition(None, 1), _exposition(None, 2), _exposition(None, 4)))
    assert obs.num_req == 3 and obs.quality == "ok"


def test_source_without_any_request_counter_says_no_data_not_zero():
    obs = _observe(_store(_exposition(1), _exposition(2), _exposition(3)), model="unknown-model")
    assert obs.num_req is None and obs.quality == "no_data"
    assert "requests_started_total" in obs.error and "--model-name" in obs.error


def test_source_with_a_missing_histogram_is_partial_and_names_it():
    texts = [_exposition(n, 0, (n, n), skip=(promql.ITL,)) for n in (1, 2, 3)]
    obs = _observe(_store(*texts))
    assert obs.quality == "partial" and obs.itl_ms is None and obs.ttft_ms is not None
    assert "itl_ms: no dynamo_frontend_inter_token_latency_seconds_sum series" in obs.error


def test_source_reports_a_counter_reset_as_missing():
    obs = _observe(_store(_exposition(100), _exposition(120), _exposition(3)))
    assert obs.num_req is None and obs.quality == "no_data" and "counter reset" in obs.error


def test_a_window_without_requests_is_zero_traffic_with_undefined_means():
    obs = _observe(_store(_exposition(7, 7, (1, 1)), _exposition(7, 7, (1, 1)), _exposition(7, 7, (1, 1))))
    assert obs.num_req == 0 and obs.quality == "ok" and obs.ttft_ms is None and obs.arrival_counts == (0, 0)


def test_prometheus_settings_from_dynamo_environment(tmp_path):
    token = tmp_path / "token"
    token.write_text("secret\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "PROMETHEUS_TOKEN_FILE": str(token),
        "PROMETHEUS_CA_BUNDLE": str(ca),
        "PROMETHEUS_EXTRA_QUERY_PARAMS": "tenant=a&dedup=true",
    }
    s = PrometheusSettings.from_env("https://prom:9090/", env)
    assert s.endpoint == "https://prom:9090" and s.bearer_token() == "secret"
    assert s.verify() == str(ca) and s.extra_params == (("tenant", "a"), ("dedup", "true"))
    off = PrometheusSettings.from_env("http://p", {"PROMETHEUS_SSL_VERIFY": "false", "PROMETHEUS_TOKEN": "t"})
    assert off.verify() is False and off.bearer_token() == "t"


@pytest.mark.parametrize(
    ("endpoint", "env", "field"),
    [
        ("prom:9090", {}, "metric_pulling_prometheus_endpoint"),
        ("http://p", {"PROMETHEUS_SSL_VERIFY": "maybe"}, "PROMETHEUS_SSL_VERIFY"),
        ("http://p", {"PROMETHEUS_TOKEN_FILE": "/nonexistent/token"}, "PROMETHEUS_TOKEN_FILE"),
        ("http://p", {"PROMETHEUS_CA_BUNDLE": "/nonexistent/ca"}, "PROMETHEUS_CA_BUNDLE"),
        ("http://p", {"PROMETHEUS_EXTRA_QUERY_PARAMS": "novalue"}, "PROMETHEUS_EXTRA_QUERY_PARAMS"),
    ],
)
def test_bad_prometheus_settings_name_the_variable(endpoint, env, field):
    with pytest.raises(ConfigError, match=field):
        PrometheusSettings.from_env(endpoint, env)


def test_arrival_resolution_defaults_to_5_s_and_must_divide_the_interval():
    from planner_core.config import config_from_env

    assert make_config().arrival_resolution_s == 5.0
    assert make_config(adjustment_interval_s=60, arrival_resolution_s=15).arrival_resolution_s == 15.0
    assert make_config(adjustment_interval_s=7).arrival_resolution_s == 7.0  # unset: one count per interval
    assert config_from_env({"PLANNER_ARRIVAL_RESOLUTION_S": "1"}).arrival_resolution_s == 1.0
    with pytest.raises(ConfigError, match=r"arrival_resolution_s \(--arrival-resolution-s\): 7 s does not divide"):
        make_config(adjustment_interval_s=60, arrival_resolution_s=7)
    with pytest.raises(ConfigError, match="arrival_resolution_s"):
        make_config(arrival_resolution_s=0)


def test_cli_rejects_a_bad_resolution_with_exit_code_2(capsys):
    from planner_core.cli import main

    assert main(["replay", "--no-store", "--arrival-resolution-s", "7", "--duration-s", "60"]) == 2
    err = capsys.readouterr().err
    assert "--arrival-resolution-s" in err and "Traceback" not in err
    assert main(["sim-frontend", "--speed", "0"]) == 2
    assert "--speed must be a positive number" in capsys.readouterr().err

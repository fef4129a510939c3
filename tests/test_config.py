import argparse

import pytest

from planner_core.config import (
    BUNDLED_PROFILE_DIR,
    COMPONENT_NAMES,
    Backend,
    ConfigError,
    Mode,
    PlannerConfig,
    Policy,
    add_config_arguments,
    config_from_args,
    config_from_env,
    make_config,
)


def parse(argv, environ=None):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv), environ=environ or {})


def test_defaults_match_dynamo():
    c = PlannerConfig()
    assert c.namespace == "dynamo"
    assert c.backend is Backend.VLLM
    assert c.mode is Mode.DISAGG
    assert c.adjustment_interval_s == 180
    assert c.max_gpu_budget == 8
    assert c.min_endpoint == 1
    assert c.prefill_engine_num_gpu == c.decode_engine_num_gpu == 1
    assert (c.ttft_ms, c.itl_ms, c.isl, c.osl) == (500.0, 50.0, 3000, 150)
    assert c.load_predictor == "arima"
    assert (c.kalman_q_level, c.kalman_q_trend, c.kalman_r, c.kalman_min_points) == (1.0, 0.1, 10.0, 5)
    assert c.metric_reporting_prometheus_port == 0
    assert c.no_correction is False and c.no_operation is False
    assert c.profile_dir() == BUNDLED_PROFILE_DIR


def test_component_names_per_backend():
    assert COMPONENT_NAMES[Backend.VLLM] == ("VllmPrefillWorker", "VllmDecodeWorker")
    for backend in (Backend.SGLANG, Backend.TRTLLM, Backend.MOCKER):
        assert COMPONENT_NAMES[backend] == ("prefill", "decode")
    assert make_config(backend="sglang").component_names().decode == "decode"


def test_cli_flags_use_dynamo_spelling():
    c = parse(
        [
            "--adjustment-interval",
            "60",
            "--max-gpu-budget",
            "16",
            "--ttft",
            "200",
            "--itl",
            "10",
            "--min-endpoint",
            "2",
            "--backend",
            "sglang",
            "--mode",
            "prefill",
            "--no-correction",
            "--load-predictor",
            "kalman",
            "--kalman-q-level",
            "3",
            "--namespace",
            "team-a",
            "--prefill-engine-num-gpu",
            "2",
            "--decode-engine-num-gpu",
            "4",
            "--no-operation",
        ]
    )
    assert c.adjustment_interval_s == 60
    assert c.max_gpu_budget == 16
    assert (c.ttft_ms, c.itl_ms) == (200.0, 10.0)
    assert c.min_endpoint == 2 and c.backend is Backend.SGLANG and c.mode is Mode.PREFILL
    assert c.no_correction and c.no_operation
    assert c.load_predictor == "kalman" and c.kalman_q_level == 3.0
    assert (c.prefill_engine_num_gpu, c.decode_engine_num_gpu) == (2, 4)
    assert c.namespace == "team-a"


def test_environment_variables_dynamo_names_and_prefix():
    env = {
        "DYN_NAMESPACE": "ns-from-env",
        "PROMETHEUS_ENDPOINT": "http://127.0.0.1:9090",
        "PLANNER_PROMETHEUS_PORT": "9400",
        "PLANNER_MAX_GPU_BUDGET": "32",
        "PLANNER_NO_CORRECTION": "true",
    }
    c = config_from_env(env)
    assert c.namespace == "ns-from-env"
    assert c.metric_pulling_prometheus_endpoint == "http://127.0.0.1:9090"
    assert c.metric_reporting_prometheus_port == 9400
    assert c.max_gpu_budget == 32
    assert c.no_correction is True


def test_flags_override_environment():
    c = parse(["--max-gpu-budget", "4"], environ={"PLANNER_MAX_GPU_BUDGET": "32", "DYN_NAMESPACE": "x"})
    assert c.max_gpu_budget == 4
    assert c.namespace == "x"


def test_parameter_object_round_trips_through_json():
    c = make_config(policy="dynamo", ttft_ms=300, mode="decode")
    again = PlannerConfig.model_validate_json(c.model_dump_json())
    assert again == c
    assert again.policy is Policy.DYNAMO
    schema = PlannerConfig.model_json_schema()
    assert "max_gpu_budget" in schema["properties"]


@pytest.mark.parametrize(
    ("values", "field", "hint"),
    [
        ({"adjustment_interval_s": -5}, "adjustment_interval_s (--adjustment-interval)", "greater than 0"),
        ({"backend": "tensorflow"}, "backend (--backend)", "vllm"),
        ({"max_gpu_budget": 1}, "max_gpu_budget", "raise --max-gpu-budget to at least 2"),
        ({"max_gpu_budget": 5, "min_endpoint": 2, "decode_engine_num_gpu": 2}, "max_gpu_budget", "at least 6"),
        ({"load_predictor": "lstm"}, "load_predictor", "choose one of"),
        ({"ttft_ms": 0}, "ttft_ms (--ttft)", "greater than 0"),
        ({"decode_max_replicas": 1, "min_endpoint": 2, "max_gpu_budget": 8}, "decode_max_replicas", "cap 1"),
        ({"unknown_setting": 1}, "unknown_setting", "Extra inputs"),
    ],
)
def test_invalid_values_name_the_field(values, field, hint):
    with pytest.raises(ConfigError) as err:
        make_config(**values)
    assert field in str(err.value)
    assert hint in str(err.value)


def test_budget_check_counts_only_planned_pools():
    c = make_config(mode="decode", max_gpu_budget=1)
    assert c.minimum_gpus() == 1
    with pytest.raises(ConfigError):
        make_config(mode="disagg", max_gpu_budget=1)


def test_bad_boolean_in_environment():
    with pytest.raises(ConfigError, match="PLANNER_NO_CORRECTION"):
        config_from_env({"PLANNER_NO_CORRECTION": "maybe"})


def test_an_entry_point_default_is_passed_in_and_shown_in_help(capsys):
    """One default per parameter: the replay's 60 s interval sits under flags and PLANNER_*
    variables, and its --help shows the default it really uses."""
    from planner_core.cli import build_parser
    from planner_core.commands.replay import REPLAY_DEFAULTS

    parser = build_parser()
    args = parser.parse_args(["replay"])
    assert args.adjustment_interval_s is None  # nothing rewrites the parsed arguments
    assert config_from_args(args, environ={}, defaults=REPLAY_DEFAULTS).adjustment_interval_s == 60
    env = {"PLANNER_ADJUSTMENT_INTERVAL_S": "90"}
    assert config_from_args(args, environ=env, defaults=REPLAY_DEFAULTS).adjustment_interval_s == 90
    flagged = parser.parse_args(["replay", "--adjustment-interval", "30"])
    assert config_from_args(flagged, environ=env, defaults=REPLAY_DEFAULTS).adjustment_interval_s == 30
    assert config_from_args(args, environ={}).adjustment_interval_s == 180  # the model's own default
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "seconds between planning cycles (default: 60)" in help_text
    assert "most GPUs prefill and decode may use together (default: 64)" in help_text


def test_log_dir_gets_the_planner_log(tmp_path, monkeypatch):
    import logging

    from planner_core.cli import main
    from planner_core.logs import LOG_FILE, LOGGER, log_to_dir

    logger = logging.getLogger(LOGGER)
    before = list(logger.handlers)
    monkeypatch.setenv("PLANNER_LOG_DIR", str(tmp_path / "logs"))
    try:
        assert main(["size", "--num-req", "100", "--isl", "3000", "--osl", "150", "--json"]) == 0
        logging.getLogger("sla_planner.cycle").warning("a cycle's warning")
        assert log_to_dir(tmp_path / "logs") == (tmp_path / "logs" / LOG_FILE).resolve()  # no second handler
        assert len(logger.handlers) == len(before) + 1
        for h in logger.handlers:
            h.flush()
        text = (tmp_path / "logs" / LOG_FILE).read_text()
        assert "sla-planner size --num-req 100" in text and "WARNING sla_planner.cycle: a cycle's warning" in text
    finally:
        for h in logger.handlers[len(before) :]:
            logger.removeHandler(h)
            h.close()
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"log_dir \(--log-dir\): cannot write a log file"):
        log_to_dir(tmp_path / "file")

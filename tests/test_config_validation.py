"""Settings are finite, errors name where a value came from, misspelt variables warn, and a
command is not failed by a setting it does not use."""

from __future__ import annotations

import json
import logging

import pytest

from planner_core.cli import main
from planner_core.commands.replay import REPLAY_ENV_FIELDS
from planner_core.commands.size import SIZE_ENV_FIELDS
from planner_core.config import ConfigError, config_from_env, make_config


@pytest.mark.parametrize("field", ["ttft_ms", "itl_ms", "kalman_r", "kalman_q_level", "sla_attainment"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), "inf", "nan"])
def test_non_finite_floats_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        make_config(**{field: value})


def test_environment_error_names_the_variable_not_the_flag():
    with pytest.raises(ConfigError) as err:
        config_from_env({"PLANNER_ITL_MS": "inf"})
    assert "PLANNER_ITL_MS" in str(err.value) and "--itl" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from_env({"PLANNER_PROMETHEUS_PORT": "99999"})  # Dynamo's own name
    assert "PLANNER_PROMETHEUS_PORT" in str(err.value)
    # a flag that overrides the variable is blamed as the flag
    with pytest.raises(ConfigError) as err:
        config_from_env({"PLANNER_ITL_MS": "50"}, itl_ms=float("inf"))
    assert "PLANNER_ITL_MS" not in str(err.value) and "--itl" in str(err.value)


def test_error_message_is_one_line_with_the_fix():
    with pytest.raises(ConfigError) as err:
        config_from_env({"PLANNER_ITL_MS": "x", "PLANNER_TTFT_MS": "-1"})
    text = str(err.value)
    assert "\n" not in text
    assert "give a valid PLANNER_ITL_MS" in text and "give a valid PLANNER_TTFT_MS" in text


def test_unknown_planner_variables_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="sla_planner.config"):
        config_from_env({"PLANNER_ITL": "30", "PLANNER_MAX_GPU_BUDGT": "4", "PLANNER_DB_URL": "sqlite://"})
    messages = [r.getMessage() for r in caplog.records]
    assert any("PLANNER_ITL:" in m and "PLANNER_ITL_MS" in m for m in messages), messages
    assert any("PLANNER_MAX_GPU_BUDGT" in m and "PLANNER_MAX_GPU_BUDGET" in m for m in messages), messages
    assert not any("PLANNER_DB_URL" in m for m in messages)  # read by the store, not unknown


def test_a_setting_the_command_does_not_use_does_not_fail_it(monkeypatch, capsys):
    monkeypatch.setenv("PLANNER_METRIC_REPORTING_PROMETHEUS_PORT", "99999")
    monkeypatch.setenv("PLANNER_KALMAN_R", "-1")
    assert main(["size", "--num-req", "1200", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_gpus"] >= 2
    # ... but one it uses still does
    monkeypatch.setenv("PLANNER_SLA_ATTAINMENT", "2")
    assert main(["size", "--num-req", "1200"]) == 2
    assert "PLANNER_SLA_ATTAINMENT" in capsys.readouterr().err


def test_env_fields_of_the_commands():
    assert "sla_attainment" in SIZE_ENV_FIELDS and "metric_reporting_prometheus_port" not in SIZE_ENV_FIELDS
    assert "load_predictor" in REPLAY_ENV_FIELDS and "no_operation" not in REPLAY_ENV_FIELDS
    env = {"PLANNER_METRIC_REPORTING_PROMETHEUS_PORT": "99999", "PLANNER_NO_OPERATION": "true"}
    config = config_from_env(env, env_fields=REPLAY_ENV_FIELDS)
    assert config.no_operation is False  # a dry run would leave the simulated cluster unscaled

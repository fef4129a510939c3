import json

import pytest

from planner_core.cli import main

MOONCAKE = "".join(
    f'{{"timestamp": {i * 2000}, "input_length": {100 + i % 7}, "output_length": {10 + i % 3}}}\n' for i in range(600)
)
SERVEGEN = "window_start_s,window_s,total_rate_rps,mean_input_tokens_est,mean_output_tokens_est\n" + "".join(
    f"{i * 600},600,{1 + (i % 5) * 0.1},100,10\n" for i in range(40)
)


@pytest.fixture
def trace(tmp_path):
    def _write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    return _write


def test_forecast_eval_json(trace, capsys):
    path = trace("m.jsonl", MOONCAKE)
    assert main(["forecast-eval", "--trace", path, "--predictor", "constant", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["points"] == 18 and out["intervals"] == 19  # the first interval has no forecast
    assert out["mape"] == 0.0 and out["smape"] == 0.0 and out["mae"] == 0.0
    for key in ("predict_ms_p50", "predict_ms_p95", "predictor", "series"):
        assert key in out


def test_forecast_eval_table_isl_and_servegen(trace, capsys):
    path = trace("s.csv", SERVEGEN)
    assert (
        main(["forecast-eval", "--trace", path, "--predictor", "auto", "--interval-s", "1200", "--series", "isl"]) == 0
    )
    text = capsys.readouterr().out
    assert "sMAPE" in text and "MAPE" in text and "predict ms" in text


def test_forecast_eval_errors(trace, capsys):
    path = trace("s.csv", SERVEGEN)
    assert main(["forecast-eval", "--trace", path, "--predictor", "kalman", "--interval-s", "900"]) == 2
    assert "multiple" in capsys.readouterr().err
    bad = trace("b.jsonl", MOONCAKE + "{oops\n")
    assert main(["forecast-eval", "--trace", bad, "--predictor", "kalman"]) == 2
    err = capsys.readouterr().err
    assert "line 601" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["forecast-eval", "--trace", path, "--predictor", "oracle"])

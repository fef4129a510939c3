import json
import subprocess
import sys
from pathlib import Path

from planner_core.cli import main


def test_size_json_reproduces_dynamo(capsys):
    assert (
        main(
            [
                "size",
                "--num-req",
                "1200",
                "--isl",
                "3000",
                "--osl",
                "150",
                "--interval-s",
                "60",
                "--policy",
                "dynamo",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    for key in (
        "prefill_replicas",
        "decode_replicas",
        "prefill_thpt_per_gpu",
        "decode_thpt_per_gpu",
        "prefill_gpus",
        "decode_gpus",
        "reason",
    ):
        assert key in out
    assert (out["prefill_replicas"], out["decode_replicas"]) == (2, 1)
    assert round(out["prefill_thpt_per_gpu"]) == 49481
    assert round(out["decode_thpt_per_gpu"]) == 6795


def test_size_table_output(capsys):
    assert (
        main(
            [
                "size",
                "--num-req",
                "6000",
                "--ttft-ms",
                "300",
                "--itl-ms",
                "20",
                "--max-gpu-budget",
                "32",
                "--prefill-engine-num-gpu",
                "2",
                "--decode-engine-num-gpu",
                "1",
                "--min-endpoint",
                "1",
                "--mode",
                "disagg",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "prefill_replicas" in out and "decode_itl_target_ms" in out and "20.000" in out


def test_size_bad_input_names_the_field(capsys):
    assert main(["size", "--num-req", "10", "--max-gpu-budget", "1"]) == 2
    err = capsys.readouterr().err
    assert "max_gpu_budget" in err and "raise --max-gpu-budget" in err
    assert main(["size", "--num-req", "10", "--mode", "both"]) == 2
    assert "mode (--mode)" in capsys.readouterr().err
    assert main(["size", "--num-req", "10", "--profile-dir", "/nonexistent/profile"]) == 2
    assert "pre-deployment profiling" in capsys.readouterr().err


def test_console_script_runs(capsys):
    """The installed ``sla-planner`` entry point (pyproject's [project.scripts]), not ``python -m``."""
    script = Path(sys.executable).parent / "sla-planner"
    assert script.exists(), f"{script}: the package is not installed with its console script; pip install -e ."
    argv = ["size", "--num-req", "1200", "--interval-s", "60", "--json"]
    result = subprocess.run([str(script), *argv], capture_output=True, text=True, check=True, timeout=120)
    assert main(argv) == 0
    assert json.loads(result.stdout) == json.loads(capsys.readouterr().out)
    bad = subprocess.run([str(script), "size", "--num-req", "-1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("sla-planner size: error: --num-req:")

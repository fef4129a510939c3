"""Bad input on the command line: one line `sla-planner <cmd>: error: <field>: <what>; <fix>`,
exit code 2, never a traceback, never a hang, nothing created or deleted on the way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from planner_core.cli import main
from planner_core.config import BUNDLED_TRACE

ERROR_LINE = re.compile(r"^sla-planner [\w -]+: error: (?P<field>[^:]+?): .+; .+$")


def _fails_cleanly(capsys, argv: list[str], field: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (argv, captured.out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = ERROR_LINE.match(lines[0])
    assert match, lines[0]
    assert field in match.group("field"), (field, lines[0])
    return lines[0]


@pytest.fixture
def traces(tmp_path) -> dict[str, Path]:
    out = {}
    for name, stamp in (("ms_1e15", "1e15"), ("ms_1e300", "1e300")):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            '{"timestamp": 0, "input_length": 10, "output_length": 5}\n'
            f'{{"timestamp": {stamp}, "input_length": 10, "output_length": 5}}\n'
        )
        out[name] = path
    return out


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["size", "--num-req", "-5"], "--num-req"),
        (["size", "--num-req", "inf"], "--num-req"),
        (["size", "--num-req", "nan"], "--num-req"),
        (["size", "--num-req", "1e308"], "--num-req"),
        (["size", "--num-req", "10", "--prefill-correction", "-3"], "--prefill-correction"),
        (["size", "--num-req", "10", "--decode-correction", "-2"], "--decode-correction"),
        (["size", "--num-req", "10", "--decode-correction", "nan"], "--decode-correction"),
        (["size", "--num-req", "10", "--itl-ms", "inf"], "itl_ms"),
        (["size", "--num-req", "10", "--ttft-ms", "nan"], "ttft_ms"),
        (["forecast-eval", "--trace", str(BUNDLED_TRACE), "--predictor", "constant", "--interval-s", "inf"],
         "--interval-s"),
        (["replay", "--startup-s", "nan", "--no-store"], "--startup-s"),
        (["replay", "--startup-s", "inf", "--no-store"], "--startup-s"),
        (["replay", "--startup-s", "-30", "--no-store"], "--startup-s"),
        (["replay", "--load-scale", "inf", "--no-store"], "--load-scale"),
        (["replay", "--load-scale", "-1", "--no-store"], "--load-scale"),
        (["replay", "--copy-jitter-s", "-1", "--no-store"], "--copy-jitter-s"),
        (["replay", "--copy-jitter-s", "nan", "--no-store"], "--copy-jitter-s"),
        (["replay", "--speed-up", "0", "--no-store"], "--speed-up"),
        (["replay", "--speed-up", "inf", "--no-store"], "--speed-up"),
        (["replay", "--max-num-seqs", "0", "--no-store"], "max_num_seqs"),
        (["replay", "--duration-s", "nan", "--no-store"], "--duration-s"),
        (["replay", "--policy", "dynamo", "--compare", "default,oracle", "--no-store"], "--policy"),
        (["history", "--limit", "0", "--db-url", "sqlite:///:memory:"], "--limit"),
    ],
)
def test_bad_numbers_are_one_line_errors(capsys, argv, field):
    _fails_cleanly(capsys, argv, field)


def test_load_scale_beyond_memory_is_refused_before_scaling(capsys):
    line = _fails_cleanly(capsys, ["replay", "--load-scale", "1e9", "--no-store"], "azure_conv_2023.csv")
    assert "--load-scale" in line


@pytest.mark.parametrize("name", ["ms_1e15", "ms_1e300"])
def test_absurd_trace_timestamps_are_refused_before_allocating(capsys, traces, name):
    line = _fails_cleanly(capsys, ["replay", "--trace", str(traces[name]), "--no-store"], str(traces[name]))
    assert "check the timestamps' unit" in line
    _fails_cleanly(capsys, ["forecast-eval", "--trace", str(traces[name]), "--predictor", "constant"], "--trace")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_req", ["1e12", "1e11"])
def test_huge_loads_return(capsys, num_req):
    """1e14 used to loop for hours in the Erlang recursion; the cap is 1e12 and it must return
    (the timeout fails the test otherwise)."""
    assert main(["size", "--num-req", num_req, "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["total_gpus"] <= out["max_gpu_budget"] and out["budget_limited"]


def test_report_dir_is_checked_before_the_replay(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    line = _fails_cleanly(capsys, ["replay", "--report-dir", str(a_file), "--no-store"], "--report-dir")
    assert "replaying" not in capsys.readouterr().err  # nothing ran
    assert "is a file" in line
    blocked = a_file / "sub"  # a directory cannot be created inside a file
    _fails_cleanly(capsys, ["replay", "--report-dir", str(blocked), "--no-store"], "--report-dir")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "index.html").write_text("an earlier report")
    line = _fails_cleanly(capsys, ["replay", "--report-dir", str(earlier), "--no-store"], "--report-dir")
    assert "--overwrite-report" in line
    assert (earlier / "index.html").read_text() == "an earlier report"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_unwritable_report_dir(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _fails_cleanly(capsys, ["replay", "--report-dir", str(locked / "r"), "--no-store"], "--report-dir")


def test_database_that_is_not_one(capsys, tmp_path):
    fake = tmp_path / "fake.db"
    fake.write_text("this is a text file posing as a database\n" * 10)
    url = f"sqlite:///{fake}"
    for argv in (["history", "--db-url", url], ["db", "current", "--db-url", url], ["db", "upgrade", "--db-url", url]):
        _fails_cleanly(capsys, argv, "--db-url")
    assert fake.read_text().startswith("this is a text file")


def test_read_only_database(capsys, tmp_path):
    path = tmp_path / "ro.db"
    assert main(["db", "upgrade", "--db-url", f"sqlite:///{path}"]) == 0
    capsys.readouterr()
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    _fails_cleanly(capsys, ["replay", "--duration-s", "120", "--predictor", "constant", "--db-url", ro], "--db-url")
    assert main(["history", "--db-url", ro]) == 0  # reading is fine
    assert main(["db", "current", "--db-url", ro]) == 0


def test_bogus_revision_leaves_no_file(capsys, tmp_path):
    path = tmp_path / "new.db"
    argv = ["db", "upgrade", "--revision", "bogus", "--db-url", f"sqlite:///{path}"]
    line = _fails_cleanly(capsys, argv, "--revision")
    assert "0001" in line
    assert not path.exists()


def test_read_only_commands_do_not_create_a_database(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "typo.db"
    _fails_cleanly(capsys, ["history", "--db-url", f"sqlite:///{missing}"], "--db-url")
    _fails_cleanly(capsys, ["db", "current", "--db-url", f"sqlite:///{missing}"], "--db-url")
    _fails_cleanly(capsys, ["db", "prune", "--older-than", "90d", "--db-url", f"sqlite:///{missing}"], "--db-url")
    assert not missing.exists()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLANNER_DB_URL", "")
    line = _fails_cleanly(capsys, ["db", "current"], "--db-url")
    assert "planner.db" in line
    assert list(tmp_path.iterdir()) == []


def test_prune_everything_needs_yes(capsys, tmp_path):
    from planner_core.config import make_config
    from planner_core.store import Store

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store(url)
    dep = store.ensure_deployment("d", "ns", None, "vllm", "disagg")
    started = datetime.now(UTC) - timedelta(minutes=5)
    store.finish_run(store.begin_run(dep, "schedule", make_config().model_dump(mode="json"), started), "ok", started)
    line = _fails_cleanly(capsys, ["db", "prune", "--older-than", "0", "--db-url", url], "--older-than")
    assert "--yes" in line
    assert store.table_counts()["planner_runs"] == 1  # nothing deleted
    assert main(["db", "prune", "--older-than", "0", "--yes", "--db-url", url]) == 0
    assert store.table_counts()["planner_runs"] == 0
    store.close()


def test_python_dash_m_prints_usage_errors_without_a_traceback(tmp_path):
    """Under ``python -m planner_core.cli`` the module is ``__main__``: a UsageError class defined
    in it was a different class from the one the commands raised."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(
        [sys.executable, "-m", "planner_core.cli", "history", "--limit", "0", "--db-url", "sqlite:///:memory:"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "sla-planner history: error: --limit: must be a positive number of cycles, got 0; for example 50"
    )

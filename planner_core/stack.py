"""Starting and stopping the local servers of the demo stack and the end-to-end test.

Every server runs as a child process in its own session, on a free port, with its own data
directory under the stack's work directory, logging to ``<workdir>/<name>.log``; :meth:`Stack.stop`
stops each one by its process id (SIGTERM to its process group, then SIGKILL), newest first.
Nothing here imports Prefect: the Prefect server, workers and deploys are CLI processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class StackError(RuntimeError):
    """A server did not start; the message names it and its log file."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.log_path(name).open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(env or {})},
            cwd=cwd,
            start_new_session=True,  # its own process group: stopped with everything it started
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def run(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = 300,
    ) -> str:
        """Run a command to completion; its output, or :class:`StackError` with the output."""
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=cwd,
            timeout=timeout_s,
            check=False,
        )
        with self.log_path(name).open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise StackError(f"{name} failed (exit {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done.stdout

    def wait_http(self, name: str, url: str, timeout_s: float = 120.0) -> None:
        """Wait until ``url`` answers 200, failing early if the process ``name`` exited."""
        proc = dict(self.procs).get(name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}; see {self.log_path(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.3)
        raise StackError(f"{name} did not answer {url} within {timeout_s:.0f} s; see {self.log_path(name)}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every process started here, newest first, by its id."""
        while self.procs:
            _, proc = self.procs.pop()
            _terminate(proc, timeout_s)

    def stop_one(self, name: str, timeout_s: float = 15.0) -> None:
        """Stop the process started as ``name``."""
        for i, (started, proc) in enumerate(self.procs):
            if started == name:
                del self.procs[i]
                _terminate(proc, timeout_s)
                return
        raise StackError(f"no process named {name!r} in this stack")

    def check_alive(self) -> None:
        """Raise if a server of the stack has exited."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}; see {self.log_path(name)}")

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM to the process group of ``proc`` (by its id), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# -- the servers ------------------------------------------------------------------------------


def prometheus_config(targets: list[str], scrape_interval_s: float = 1.0, labels: dict[str, str] | None = None) -> str:
    """A Prometheus config scraping ``targets`` (host:port) every ``scrape_interval_s``."""
    label_lines = "".join(f"\n          {k}: {v!r}" for k, v in (labels or {}).items())
    return (
        f"global:\n  scrape_interval: {scrape_interval_s:g}s\n  evaluation_interval: {scrape_interval_s:g}s\n"
        "scrape_configs:\n  - job_name: dynamo-frontend\n    static_configs:\n"
        f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
        + (f"        labels:{label_lines}\n" if label_lines else "")
    )


def backfill_prometheus(stack: Stack, openmetrics: Path) -> None:
    """Write the samples of an OpenMetrics file (with timestamps) into the stack's Prometheus data
    directory, before :func:`start_prometheus` (``promtool tsdb create-blocks-from openmetrics``)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise StackError("promtool is not installed: apt-get install prometheus (scripts/test.sh does)")
    stack.run(
        "promtool",
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(openmetrics),
            str(stack.workdir / "prometheus-data"),
        ],
    )


def start_prometheus(
    stack: Stack,
    targets: list[str],
    scrape_interval_s: float = 1.0,
    labels: dict[str, str] | None = None,
    retention: str | None = None,
) -> str:
    """Start Prometheus scraping ``targets``; its base URL. ``retention`` (e.g. ``100y``) keeps
    back-filled samples older than Prometheus's default 15 days."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError("prometheus is not installed: apt-get install prometheus (scripts/test.sh does)")
    port = free_port()
    config = stack.workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval_s, labels))
    stack.start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={stack.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            *([f"--storage.tsdb.retention.time={retention}"] if retention else []),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    stack.wait_http("prometheus", f"{url}/-/ready", 60)
    return url


def prefect_env(stack: Stack, api_url: str | None = None, database_url: str | None = None) -> dict[str, str]:
    """Environment of every Prefect process of the stack: its own PREFECT_HOME and database
    (``database_url``, e.g. ``postgresql+asyncpg://...``; default a SQLite file in the home)."""
    home = stack.workdir / "prefect-home"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def prefect_cli() -> list[str]:
    """The ``prefect`` command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("prefect")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "prefect"]


def start_prefect_server(stack: Stack, ui: bool = True, database_url: str | None = None) -> str:
    """Start a Prefect server on a free port (its database: see :func:`prefect_env`); its API URL."""
    port = free_port()
    env = prefect_env(stack, database_url=database_url)
    api = f"http://127.0.0.1:{port}/api"
    env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
    env["PREFECT_UI_API_URL"] = api  # the UI in the browser calls this, not the default :4200
    stack.start("prefect-server", [*prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env)
    stack.wait_http("prefect-server", f"{api}/health", 180)
    stack.env.update(prefect_env(stack, api, database_url))
    return api

"""A real Prometheus server for tests (Debian's ``prometheus`` binary) and a scripted exporter.

``PrometheusServer`` writes a config with a 1 s scrape of the given targets, starts the binary
on a free loopback port with its own temporary data directory, waits for ``/-/ready`` and is
stopped by its PID. Without the binary the test is skipped, except under ``CI=true`` where it
fails (``require_prometheus``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "the prometheus binary is not installed (apt-get install prometheus; scripts/test.sh does it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """``targets``: (host:port, extra target labels) pairs, scraped every second."""

    def __init__(self, data_dir: Path, targets: Sequence[tuple[str, Mapping[str, str]]]) -> None:
        self.binary = require_prometheus()
        self.data_dir = data_dir
        self.targets = targets
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
        for i, (target, labels) in enumerate(self.targets):
            lines += [f"  - job_name: target{i}", "    static_configs:", f"      - targets: ['{target}']"]
            if labels:
                lines.append("        labels:")
                lines += [f"          {k}: '{v}'" for k, v in labels.items()]
        config.write_text("\n".join(lines) + "\n")
        self.port = free_port()
        log = open(self.data_dir / "prometheus.log", "wb")  # noqa: SIM115 (kept open for the process)
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.data_dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout_s} s")

    def wait_for_scrapes(self, timeout_s: float = 30.0) -> None:
        """Until every target has been scraped once (discovery hands targets over after ~5 s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            active = requests.get(self.url + "/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
            if len(active) == len(self.targets) and all(not t["lastScrape"].startswith("0001") for t in active):
                return
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not scrape its targets within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


class ScriptedExporter:
    """An HTTP ``/metrics`` endpoint whose text is ``render(seconds since started_at_unix)``
    (set ``started_at_unix`` to restart the script's clock)."""

    def __init__(self, render: Callable[[float], str]) -> None:
        self.started_at_unix = time.time()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = render(time.time() - exporter.started_at_unix).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

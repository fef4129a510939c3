"""Benchmarks find the shared data beside the clone (``../shared``), wherever it is checked out."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_no_benchmark_hard_codes_an_absolute_path():
    absolute = re.compile(r"""["'](/work|/home|/tmp|/Users)/""")
    offenders = [
        f"{path.name}:{lineno}: {line.strip()}"
        for path in sorted(BENCHMARKS.glob("*.py"))
        for lineno, line in enumerate(path.read_text().splitlines(), start=1)
        if absolute.search(line)
    ]
    assert offenders == [], "use Path(__file__).resolve().parents[2] / 'shared' instead:\n" + "\n".join(offenders)

"""`sla-planner serve`: serve the deployments of prefect.yaml, with their schedules, in one process.

For users without a work pool: one long-lived process registers the deployments with the Prefect
server (``PREFECT_API_URL``) and runs their flow runs as they come due. The Prefect side lives in
:mod:`flows.serve`; this module only parses the command line (``planner_core`` never imports
Prefect).
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the flows of prefect.yaml with their schedules in one process (no work pool)",
        description=(
            "Serve every deployment of prefect.yaml (plan per model, replan, refit, replay) from this "
            "process. Needs a Prefect server: set PREFECT_API_URL. Stop with Ctrl-C."
        ),
    )
    parser.add_argument("--prefect-file", type=Path, default=Path("prefect.yaml"), help="default ./prefect.yaml")
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="serve only this deployment (repeatable)"
    )
    parser.add_argument(
        "--interval-s", type=int, default=None, help="override every schedule's interval (demos, tests), seconds"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError

    if not args.prefect_file.is_file():
        raise UsageError(
            f"--prefect-file: {args.prefect_file} not found; run from the repository root or pass the path"
        )
    if args.interval_s is not None and args.interval_s <= 0:
        raise UsageError("--interval-s must be a positive number of seconds")
    # As prefect.yaml's pools do: the planner's own log records in each flow run's logs.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "sla_planner")
    serve = importlib.import_module("flows.serve")
    try:
        doc = serve.load_prefect_file(args.prefect_file)
        if args.interval_s is not None:
            doc = serve.with_interval(doc, args.interval_s)
        deployments = serve.runner_deployments(doc, args.only)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return int(serve.serve_deployments(deployments))

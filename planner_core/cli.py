"""`sla-planner` entry point: one subcommand per module in :mod:`planner_core.commands`.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from planner_core.commands import UsageError
from planner_core.config import ConfigError
from planner_core.connectors.base import ConnectorError, DeploymentValidationError
from planner_core.logs import LOGGER, log_to_dir
from planner_core.profiles import ProfileError
from planner_core.redaction import redact_argv, redact_text
from planner_core.sim.replay import ReplayError
from planner_core.store.errors import StoreError
from planner_core.traces import TraceError

COMMAND_MODULES = (
    "planner_core.commands.size",
    "planner_core.commands.replay",
    "planner_core.commands.forecast",
    "planner_core.commands.db",
    "planner_core.commands.history",
    "planner_core.commands.virtual",
    "planner_core.commands.run_once",
    "planner_core.commands.serve",
    "planner_core.commands.sim_cluster",
    "planner_core.commands.demo",
    "planner_core.commands.sim_frontend",
    "planner_core.commands.exporter",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-planner",
        description="SLA-driven autoscaling planner for disaggregated LLM inference.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # --log-dir where the command takes planner flags, else PLANNER_LOG_DIR: a log file too
        log_dir = getattr(args, "log_dir", None) or os.environ.get("PLANNER_LOG_DIR")
        if log_dir:
            log_to_dir(log_dir)
            given = sys.argv[1:] if argv is None else argv
            logging.getLogger(LOGGER).info("sla-planner %s", " ".join(redact_argv(given)))
        return int(args.func(args) or 0)
    except (ConfigError, ConnectorError, ProfileError, TraceError, StoreError, UsageError, ReplayError) as exc:
        print(f"sla-planner {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # a file that is no database, a read-only one, a server gone
        reason = " ".join(redact_text(str(getattr(exc, "orig", None) or exc)).split())  # one line
        print(
            f"sla-planner {args.command}: error: --db-url: the database failed: {reason}; "
            "check the URL, that the file is a planner database and that it is writable",
            file=sys.stderr,
        )
        return 2


def _one_line(exc: Exception) -> str:
    """The message as printed: a control character from a value (a path holding a carriage return)
    escaped, so that it cannot break the error line. Messages that list problems keep their lines."""
    text = str(exc)
    keep = "\n" if isinstance(exc, DeploymentValidationError) else ""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


__all__ = ["COMMAND_MODULES", "UsageError", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())

"""`sla-planner virtual pending|ack`: the outside system's side of the virtual connector.

An environment the planner does not control reads the pending request, scales, and
acknowledges it::

    sla-planner virtual pending --deployment dynamo/llama          # JSON, or "null" when none
    sla-planner virtual ack --deployment dynamo/llama [--request-id 42] [--prefill 2 --decode 3]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from planner_core.commands.db import add_db_url_argument
from planner_core.records import Replicas
from planner_core.store import Store
from planner_core.store.scaling_requests import acknowledge, pending_request


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "virtual",
        help="the outside system's side of the virtual connector: show or acknowledge a scaling request",
        description="Show the pending scaling request of a deployment, or acknowledge that it was carried out.",
    )
    sub = parser.add_subparsers(dest="virtual_command", metavar="ACTION")
    sub.required = True
    pending = sub.add_parser("pending", help="print the pending request as JSON (null when none)")
    ack = sub.add_parser("ack", help="acknowledge the pending request (or --request-id)")
    for p in (pending, ack):
        add_db_url_argument(p)
        p.add_argument("--deployment", required=True, help="deployment name or namespace/name")
    ack.add_argument(
        "--request-id", type=int, default=None, help="the request to acknowledge (default: the pending one)"
    )
    ack.add_argument("--prefill", type=int, default=None, help="prefill replicas running now (default: the target)")
    ack.add_argument("--decode", type=int, default=None, help="decode replicas running now (default: the target)")
    ack.add_argument("--by", default=None, help="who acknowledges (recorded)")
    pending.set_defaults(func=run_pending)
    ack.set_defaults(func=run_ack)


def run_pending(args: argparse.Namespace) -> int:
    with Store(args.db_url) as store:
        request = pending_request(store, args.deployment)
    print(json.dumps(request.as_dict() if request is not None else None))
    return 0


def run_ack(args: argparse.Namespace) -> int:
    from planner_core.cli import UsageError

    for flag in ("prefill", "decode"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise UsageError(f"--{flag}: replicas must be >= 0, got {value}")
    with Store(args.db_url) as store:
        running = None
        if args.prefill is not None or args.decode is not None:
            request = pending_request(store, args.deployment)
            targets = request.targets if request is not None else Replicas(None, None)
            running = Replicas(
                args.prefill if args.prefill is not None else targets.prefill,
                args.decode if args.decode is not None else targets.decode,
            )
        done = acknowledge(store, args.deployment, args.request_id, running=running, by=args.by)
    print(json.dumps(done.as_dict()))
    return 0

"""`sla-planner size`: one sizing decision from numbers on the command line."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from planner_core.config import SIZING_FIELDS, add_config_arguments, config_from_args
from planner_core.profiles import load_profile
from planner_core.records import Corrections, Decision, LoadForecast
from planner_core.sizing import size

SIZE_FLAGS = (
    "profile_results_dir",
    "adjustment_interval_s",
    "ttft_ms",
    "itl_ms",
    "prefill_engine_num_gpu",
    "decode_engine_num_gpu",
    "max_gpu_budget",
    "min_endpoint",
    "prefill_max_replicas",
    "decode_max_replicas",
    "max_num_seqs",
    "mode",
    "policy",
    "isl",
    "osl",
    "no_correction",
    "prefill_throughput_factor",
    "decode_target_factor",
)
# Settings read from PLANNER_* variables: the flags' fields and the default policy's knobs the
# sizing reads. The others (metrics ports, predictors ...) do not concern `size`, so a bad value
# there must not fail it.
# A million requests per second for a day is far past any budget; above it the token
# arithmetic would overflow to infinity.
MAX_NUM_REQ = 1e12
SIZE_ENV_FIELDS = (*SIZE_FLAGS, *SIZING_FIELDS)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "size",
        help="size the prefill and decode pools for a given load",
        description=(
            "Compute one sizing decision. Example (Dynamo's numbers for 1200 requests per "
            "minute at ISL 3000 / OSL 150): sla-planner size --num-req 1200 --isl 3000 "
            "--osl 150 --interval-s 60 --policy dynamo --json"
        ),
    )
    parser.add_argument("--num-req", type=float, required=True, help="requests in the interval")
    parser.add_argument("--prefill-correction", type=float, default=1.0, help="observed/profiled TTFT (default 1)")
    parser.add_argument("--decode-correction", type=float, default=1.0, help="observed/profiled ITL (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_arguments(parser, only=SIZE_FLAGS)
    parser.set_defaults(func=run)


def _check_inputs(args: argparse.Namespace) -> None:
    from planner_core.commands import UsageError

    if not (math.isfinite(args.num_req) and args.num_req >= 0):
        raise UsageError(
            f"--num-req: must be a finite number of requests >= 0, got {args.num_req:g}; "
            "give the requests expected in one interval, for example 1200"
        )
    if args.num_req > MAX_NUM_REQ:
        raise UsageError(
            f"--num-req: {args.num_req:g} requests in one interval is more than any GPU budget serves "
            f"(at most {MAX_NUM_REQ:g}); check the number and --interval-s"
        )
    corrections = (("--prefill-correction", args.prefill_correction), ("--decode-correction", args.decode_correction))
    for flag, value in corrections:
        if not (math.isfinite(value) and value > 0):
            raise UsageError(
                f"{flag}: must be a finite ratio > 0 (observed / profiled latency), got {value:g}; "
                "use 1 for 'as profiled'"
            )


def run(args: argparse.Namespace) -> int:
    _check_inputs(args)
    config = config_from_args(args, env_fields=SIZE_ENV_FIELDS)
    profile = load_profile(config.profile_dir())
    forecast = LoadForecast(num_req=args.num_req, isl=float(config.isl), osl=float(config.osl))
    corrections = Corrections(args.prefill_correction, args.decode_correction, source="command line")
    decision = size(forecast, profile, config, corrections)
    if args.json:
        print(json.dumps(_jsonable(decision.to_dict()), sort_keys=True))
    else:
        print(format_decision(decision))
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def format_decision(decision: Decision) -> str:
    """A two-column table of every number on the decision, grouped as the math runs."""
    rows: list[tuple[str, Any]] = []
    for name, value in decision.to_dict().items():
        if value is None or name == "details":
            continue
        text = str(value)
        if isinstance(value, float):
            text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        rows.append((name, text))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)

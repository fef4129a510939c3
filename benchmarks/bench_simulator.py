"""Speed of the cluster simulator and the oracle on one hour of the Azure conversation trace.

    .venv/bin/python benchmarks/bench_simulator.py [--scale 30] [--interval 60] [--trace PATH]

Reads the trace with a tiny local CSV parse (TIMESTAMP with 7 fractional digits, the last one
dropped; ContextTokens; GeneratedTokens), scales the load with ``load_scale`` and replays it:
every ``--interval`` seconds a crude demand-proportional rule sets the targets (so scaling,
start-up and draining are exercised), with metrics read every interval as the replay driver
does. Prints requests/s of the pure simulation, then times the oracle for the same hour, and
ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from planner_core.config import BUNDLED_PROFILE_DIR
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim import ClusterSimulator, load_scale, oracle_gpu_seconds, oracle_replicas

# The shared folder beside the clone (``../shared``), as the other benchmarks read it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
TRACE = SHARED / "data" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"


def read_azure(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stamps, isl, osl = [], [], []
    with path.open() as fh:
        next(fh)
        for line in fh:
            line = line.strip()
            if not line:
                continue
            ts, ctx, gen = line.split(",")
            stamps.append(datetime.fromisoformat(ts[:-1]).timestamp())
            isl.append(float(ctx))
            osl.append(float(gen))
    t = np.array(stamps)
    return t - t[0], np.array(isl), np.array(osl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--ttft", type=float, default=500.0)
    parser.add_argument("--itl", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=3600.0, help="replay this much of the trace")
    parser.add_argument("--no-oracle", action="store_true")
    args = parser.parse_args()

    profile = load_profile(BUNDLED_PROFILE_DIR)
    arrival, isl, osl = read_azure(args.trace)
    keep = arrival < args.seconds
    arrival, isl, osl = load_scale(arrival[keep], isl[keep], osl[keep], args.scale, seed=0)
    n = arrival.size
    end = float(math.ceil(arrival[-1] / args.interval) * args.interval)
    print(f"{n:,d} requests over {arrival[-1]:.0f} s (load scale {args.scale:g})")

    ctx = float(np.mean(isl + osl / 2))
    op = profile.decode.surface.best_operating_point(args.itl, ctx)
    per_decode = op.kv_usage * profile.decode.max_kv_tokens / ctx / (op.itl_ms / 1000.0)

    t0 = time.perf_counter()
    sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(4, 4), startup_s=60.0)
    build_s = time.perf_counter() - t0
    t = 0.0
    while t < end:
        t += args.interval
        sim.advance_to(t)
        m = sim.metrics(t - args.interval, t)
        if m.num_req and m.isl is not None:
            rate = m.num_req / args.interval
            p = math.ceil(rate * profile.prefill.ttft_ms(m.isl) / 1000.0 / 0.7)
            d = math.ceil(rate * float(np.mean(osl)) / (0.8 * per_decode))  # 20 % KV headroom
            sim.set_targets(Replicas(max(p, 1), max(d, 1)))
    sim.advance_to(math.inf)  # let everything finish (now_s = last event)
    sim_s = time.perf_counter() - t0
    res = sim.results()
    done = int(res.finished.sum())
    gpu = sim.gpu_seconds()
    print(
        f"simulation: {sim_s:.2f} s ({build_s:.2f} s setup) -> {n / sim_s:,.0f} requests/s; "
        f"{done:,d} finished, SLA attainment {res.attainment(args.ttft, args.itl):.4f}, "
        f"GPU-h prefill {gpu['prefill'] / 3600:.1f} decode {gpu['decode'] / 3600:.1f}"
    )
    out = {
        "requests": n,
        "sim_s": round(sim_s, 3),
        "sim_requests_per_s": round(n / sim_s),
        "finished": done,
        "gpu_hours": {k: round(v / 3600, 2) for k, v in gpu.items()},
    }
    if not args.no_oracle:
        t1 = time.perf_counter()
        plan = oracle_replicas(profile, arrival, isl, osl, args.interval, args.ttft, args.itl)
        oracle_s = time.perf_counter() - t1
        ogpu = oracle_gpu_seconds(plan, args.interval)
        print(
            f"oracle: {len(plan)} intervals in {oracle_s:.2f} s; GPU-h prefill {ogpu['prefill'] / 3600:.1f} "
            f"decode {ogpu['decode'] / 3600:.1f}; max replicas prefill {max(r.prefill or 0 for r in plan)} "
            f"decode {max(r.decode or 0 for r in plan)}"
        )
        out.update(
            oracle_s=round(oracle_s, 3),
            oracle_intervals=len(plan),
            oracle_gpu_hours={k: round(v / 3600, 2) for k, v in ogpu.items()},
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""What a day-long ServeGen trace needs at a scale, without replaying the day (docs/baselines.md,
"Day-long traces"): the numbers behind bench_day's default scales and the 0.75x static-best target.

    .venv/bin/python benchmarks/bench_day_scale.py --trace m-mid --scales 0.1,0.2,0.25,0.3
        [--peak-windows 4] [--sample-every-min 12] [--static-prefill 6,7]

Per scale:

* ``peak``: the oracle's plan (``planner_core.sim.oracle``) over the busiest 10-minute windows
  of the day (the ``--peak-windows`` with the most prompt tokens and the most output tokens
  per second), one window at a time: the most prefill and decode engines any minute needs.
* ``sampled`` (``--sample-every-min``): the oracle's plan for every n-th minute of the day, each
  minute its own Poisson draw: mean and peak engines per pool and the day's GPU-hours estimated
  from the mean.
* ``static prefill`` (``--static-prefill``): for each count P, the TTFT misses of P prefill
  engines alone, serving the day hour by hour from an empty queue with the oracle's prefill model
  (carry-over between hours and decode admission only add misses), as a share of the day's
  feasible requests. Above 1 %, no static pair with P prefill engines reaches 99 %.

Same SLA and engine settings as bench_day. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
from bench_day import TRACES

from planner_core.config import BUNDLED_TRACE, make_config
from planner_core.feasibility import infeasible_mask
from planner_core.profiles import load_profile
from planner_core.sim.cluster import PrefillPassTime, prefill_service_s
from planner_core.sim.oracle import _prefill_misses, oracle_replicas
from planner_core.traces import read_rate_curve, read_trace, requests_from_rate_curve

WINDOW_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", choices=sorted(TRACES), required=True)
    parser.add_argument("--scales", required=True, help="comma-separated load scales")
    parser.add_argument("--peak-windows", type=int, default=2, help="busiest windows per pool to size")
    parser.add_argument("--sample-every-min", type=int, default=0, help="0: no sampled day")
    parser.add_argument("--static-prefill", default="", help="prefill counts to bound, comma-separated")
    args = parser.parse_args()
    config = make_config(adjustment_interval_s=60, max_gpu_budget=1024, load_predictor="auto")
    profile = load_profile(config.profile_dir())
    curve = read_rate_curve(TRACES[args.trace])
    lengths = read_trace(BUNDLED_TRACE)
    day = curve.window_start_s < 86_400
    prompt_tok = (curve.rate_rps * curve.mean_isl)[day]
    output_tok = (curve.rate_rps * curve.mean_osl)[day]
    k = args.peak_windows
    windows = sorted({*np.argsort(prompt_tok)[-k:].tolist(), *np.argsort(output_tok)[-k:].tolist()})
    ttft_s = config.ttft_ms / 1000.0

    def plan(start_s: float, end_s: float, scale: float, seed: int) -> tuple[int, list[tuple[int, int]]]:
        trace = requests_from_rate_curve(
            curve, lengths, seed, start_s=start_s, end_s=end_s, rate_scale=scale, match_mean_lengths=True
        )
        replicas = oracle_replicas(
            profile,
            trace.arrival_s,
            trace.isl,
            trace.osl,
            interval_s=60,
            ttft_ms=config.ttft_ms,
            itl_ms=config.itl_ms,
            num_intervals=round((end_s - start_s) / 60),
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens,
        )
        return len(trace), [(int(r.prefill or 0), int(r.decode or 0)) for r in replicas]

    report = []
    for scale in (float(x) for x in args.scales.split(",")):
        row: dict[str, object] = {"scale": scale}
        peak = [0, 0]
        for w in windows:
            lo = float(curve.window_start_s[w])
            _, counts = plan(lo, lo + WINDOW_S, scale, 0)
            peak = [max(peak[0], *(p for p, _ in counts)), max(peak[1], *(d for _, d in counts))]
        hours = [float(curve.window_start_s[w]) / 3600 for w in windows]
        row["peak"] = {"prefill": peak[0], "decode": peak[1], "windows_h": hours}
        print(f"{args.trace} x{scale:g}: oracle peak {peak[0]} prefill + {peak[1]} decode engines", flush=True)
        if args.sample_every_min:
            rows = []
            for minute in range(0, 1440, args.sample_every_min):
                n, ((p, d),) = plan(minute * 60.0, minute * 60.0 + 60.0, scale, minute)
                rows.append((n, p, d))
            a = np.array(rows, dtype=float)
            row["sampled"] = {
                "every_min": args.sample_every_min,
                "requests_per_day": float(a[:, 0].mean() * 1440),
                "mean": {"prefill": float(a[:, 1].mean()), "decode": float(a[:, 2].mean())},
                "peak": {"prefill": int(a[:, 1].max()), "decode": int(a[:, 2].max())},
                "p90": {"prefill": float(np.percentile(a[:, 1], 90)), "decode": float(np.percentile(a[:, 2], 90))},
                "oracle_gpu_hours": float((a[:, 1] + a[:, 2]).mean() * 24),
            }
            print(f"  sampled every {args.sample_every_min} min: {row['sampled']}", flush=True)
        prefill_counts = [int(x) for x in args.static_prefill.split(",") if x.strip()]
        if prefill_counts:
            pass_time = PrefillPassTime(profile)
            total = feasible = 0
            misses = dict.fromkeys(prefill_counts, 0)
            for hour in range(24):
                trace = requests_from_rate_curve(
                    curve, lengths, 100 + hour, start_s=hour * 3600.0, end_s=hour * 3600.0 + 3600.0,
                    rate_scale=scale, match_mean_lengths=True,
                )  # fmt: skip
                isl = np.maximum(np.asarray(trace.isl, dtype=float), 0.0)
                osl = np.maximum(np.asarray(trace.osl, dtype=float), 1.0)
                ok = ~infeasible_mask(profile, isl, osl, config.ttft_ms, config.itl_ms)
                counted = ((prefill_service_s(profile, isl) <= ttft_s) & ok).tolist()
                total += isl.size
                feasible += int(ok.sum())
                arrival = np.asarray(trace.arrival_s, dtype=float).tolist()
                for n_prefill in prefill_counts:
                    misses[n_prefill] += _prefill_misses(
                        arrival,
                        isl.tolist(),
                        counted,
                        n_prefill,
                        ttft_s,
                        math.inf,
                        pass_time,
                        config.max_num_batched_tokens,
                    )
            row["static_prefill"] = {
                "requests": total,
                "feasible": feasible,
                "missed_share": {n: misses[n] / feasible for n in prefill_counts},
            }
            for n_prefill in prefill_counts:
                verdict = "cannot" if misses[n_prefill] > 0.01 * feasible else "may"
                print(
                    f"  {n_prefill} prefill engines alone miss {misses[n_prefill]:,} of {feasible:,} feasible "
                    f"({misses[n_prefill] / feasible:.2%}): a static pair {verdict} reach 99 %"
                )
        report.append(row)
    print(json.dumps({"benchmark": "day_scale", "trace": args.trace, "runs": report}))


if __name__ == "__main__":
    main()

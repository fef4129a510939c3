"""What a cycle should do while the previous change is still rolling out.

    .venv/bin/python benchmarks/bench_rollout.py [--traces code,conv] [--scale 10] [--startups 60,120,240]

Replays the shared Azure traces under the ``default`` policy once per behaviour of
``--while-rolling-out`` (skip = Dynamo's rule, scale_up, scale_down = Dynamo 1.6's rule, apply)
and per worker start-up delay (the longer it is, the more cycles find a rollout in progress),
60 s interval, no store. Prints SLA attainment, GPU-hours and scaling actions per behaviour
and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from planner_core.config import RolloutBehaviour, make_config
from planner_core.profiles import load_profile
from planner_core.sim.replay import compute_oracle, load_workload, run_policy

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "azure_llm_2023"
TRACES = {"code": SHARED / "AzureLLMInferenceTrace_code.csv", "conv": SHARED / "AzureLLMInferenceTrace_conv.csv"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default="code,conv")
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--startups", default="60,120,240")
    parser.add_argument("--behaviours", default=",".join(b.value for b in RolloutBehaviour))
    args = parser.parse_args()

    rows = []
    for trace in args.traces.split(","):
        workload = load_workload(TRACES[trace], load_scale=args.scale, seed=0)
        base = make_config(adjustment_interval_s=60, max_gpu_budget=256, load_predictor="auto")
        profile = load_profile(base.profile_dir())
        plan = compute_oracle(workload, profile, base)
        for startup_s in (float(s) for s in args.startups.split(",")):
            print(f"\n== azure {trace} x{args.scale:g}, start-up {startup_s:g} s ({len(workload):,} requests)")
            print(f"{'behaviour':>10}  {'SLA met':>8}  {'GPU-h':>6}  {'actions':>7}")
            for behaviour in args.behaviours.split(","):
                config = base.model_copy(update={"while_rolling_out": RolloutBehaviour(behaviour)})
                r = run_policy(workload, config, "default", startup_s=startup_s, oracle_plan=plan, profile=profile)
                print(f"{behaviour:>10}  {r.sla_attainment:8.2%}  {r.gpu_hours:6.2f}  {r.scaling_actions:7d}")
                rows.append(
                    {
                        "trace": trace,
                        "load_scale": args.scale,
                        "startup_s": startup_s,
                        "behaviour": behaviour,
                        "sla_attainment": r.sla_attainment,
                        "gpu_hours": r.gpu_hours,
                        "scaling_actions": r.scaling_actions,
                    }
                )
    print(json.dumps({"bench": "rollout", "results": rows}))


if __name__ == "__main__":
    main()

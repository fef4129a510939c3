"""`sla-planner forecast-eval`: replay a trace through a load predictor, online.

The trace is binned into intervals; for each interval the predictor first predicts it (from
the intervals before), then observes it, as the planning cycle does. Prints MAPE (intervals
whose actual is 0 left out), sMAPE, MAE, the number of points, and the median and p95
milliseconds of one ``predict()`` call (and of one ``observe()``, where model refits happen).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from planner_core.config import make_config
from planner_core.predictors import PREDICTOR_NAMES, make_predictor
from planner_core.traces import BinnedSeries, TraceError, read_binned

SERIES_CHOICES = ("num_req", "isl", "osl")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "forecast-eval",
        help="score a load predictor on a trace (MAPE, sMAPE, MAE, predict time)",
        description=(
            "Bin a trace (Azure CSV, Mooncake JSONL or ServeGen aggregate CSV, detected from the "
            "file) into intervals and feed one series through a predictor online: predict the "
            "next interval, then observe it. Example: sla-planner forecast-eval --trace "
            "AzureLLMInferenceTrace_conv.csv --predictor auto --interval-s 60 --json"
        ),
    )
    parser.add_argument("--trace", required=True, help="trace file")
    parser.add_argument("--predictor", required=True, choices=PREDICTOR_NAMES, help="load predictor")
    parser.add_argument(
        "--interval-s",
        type=float,
        default=60.0,
        help="interval length in seconds (default 60; a multiple of the window for ServeGen curves)",
    )
    parser.add_argument("--series", choices=SERIES_CHOICES, default="num_req", help="series (default num_req)")
    parser.add_argument("--log1p", action="store_true", help="fit in log1p space (--load-predictor-log1p)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner_core.commands import UsageError

    if not (math.isfinite(args.interval_s) and args.interval_s >= 1):
        raise UsageError(
            f"--interval-s: must be a finite number of seconds >= 1, got {args.interval_s:g}; "
            "give the planner's adjustment interval, for example 60"
        )
    try:
        binned = read_binned(args.trace, args.interval_s)
    except TraceError as exc:
        raise UsageError(f"--trace: {exc}") from None
    result = evaluate(binned, args.predictor, series=args.series, log1p=args.log1p)
    result["trace"] = str(args.trace)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_result(result))
    return 0


def evaluate(
    binned: BinnedSeries,
    predictor: str,
    *,
    series: str = "num_req",
    log1p: bool = False,
    keep_points: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Online one-step evaluation of ``predictor`` on one series of ``binned``."""
    config = make_config(
        load_predictor=predictor, load_predictor_log1p=log1p, adjustment_interval_s=max(1, round(binned.interval_s))
    )
    values = binned.series(series)
    ends = binned.end_timestamps()
    p = make_predictor(predictor, config, **options)
    return evaluate_values(values, ends, p, binned.interval_s, series, keep_points=keep_points)


def evaluate_values(
    values: np.ndarray, ends: np.ndarray, p: Any, interval_s: float, series: str, *, keep_points: bool = False
) -> dict[str, Any]:
    """As :func:`evaluate`; ``keep_points`` adds the scored ``actual``, ``forecast`` and
    ``upper`` values (numpy arrays, not JSON) for paired comparisons."""
    actual: list[float] = []
    pred: list[float] = []
    upper: list[float] = []
    predict_ms: list[float] = []
    observe_ms: list[float] = []
    for v, t in zip(values, ends, strict=True):
        if p.has_data:
            t0 = time.perf_counter()
            f = p.predict()
            predict_ms.append((time.perf_counter() - t0) * 1e3)
            if not math.isnan(v):
                actual.append(float(v))
                pred.append(f.value)
                upper.append(f.upper)
        t0 = time.perf_counter()
        p.observe(None if math.isnan(v) else float(v), float(t))
        observe_ms.append((time.perf_counter() - t0) * 1e3)
    points = {"actual": np.asarray(actual), "forecast": np.asarray(pred), "upper": np.asarray(upper)}
    return {
        **(points if keep_points else {}),
        "predictor": p.name,
        "series": series,
        "interval_s": interval_s,
        "intervals": len(values),
        **scores(np.asarray(actual), np.asarray(pred), np.asarray(upper)),
        "predict_ms_p50": _pct(predict_ms, 50),
        "predict_ms_p95": _pct(predict_ms, 95),
        "observe_ms_p50": _pct(observe_ms, 50),
        "observe_ms_p95": _pct(observe_ms, 95),
        "cycle_ms_mean": (sum(predict_ms) + sum(observe_ms)) / max(len(observe_ms), 1),
    }


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def smape_terms(actual: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-point sMAPE terms ``2|a - f| / (|a| + |f|)`` in [0, 2] (0 where both are 0)."""
    err = np.abs(actual - pred)
    den = np.abs(actual) + np.abs(pred)
    return np.where(den > 0, 2 * err / np.where(den > 0, den, 1.0), 0.0)


def scores(actual: np.ndarray, pred: np.ndarray, upper: np.ndarray | None = None) -> dict[str, Any]:
    """MAPE (actual 0 left out), sMAPE (both 0 counts as 0 error), MAE, in percent / units."""
    n = int(actual.size)
    if n == 0:
        return {"points": 0, "mape": None, "smape": None, "mae": None, "upper_coverage": None}
    err = np.abs(actual - pred)
    nz = actual != 0
    mape = float(np.mean(err[nz] / np.abs(actual[nz])) * 100) if nz.any() else None
    terms = smape_terms(actual, pred)
    out = {
        "points": n,
        "mape": mape,
        "smape": float(np.mean(terms) * 100),
        "mae": float(np.mean(err)),
        "upper_coverage": float(np.mean(actual <= upper)) if upper is not None and upper.size else None,
    }
    return out


def format_result(r: dict[str, Any]) -> str:
    def num(x: Any, fmt: str = "{:.2f}") -> str:
        return "n/a" if x is None else fmt.format(x)

    lines = [
        f"trace            {r.get('trace', '')}",
        f"predictor        {r['predictor']}",
        f"series           {r['series']} ({r['intervals']} intervals of {r['interval_s']:g} s)",
        f"points           {r['points']}",
        f"MAPE             {num(r['mape'])} %  (intervals with actual 0 left out)",
        f"sMAPE            {num(r['smape'])} %",
        f"MAE              {num(r['mae'], '{:.4g}')}",
        f"upper (p90) covers {num(r['upper_coverage'] and r['upper_coverage'] * 100, '{:.1f}')} % of actuals",
        f"predict ms       p50 {num(r['predict_ms_p50'], '{:.3f}')}  p95 {num(r['predict_ms_p95'], '{:.3f}')}",
        f"observe ms       p50 {num(r['observe_ms_p50'], '{:.3f}')}  p95 {num(r['observe_ms_p95'], '{:.3f}')}",
    ]
    return "\n".join(lines)


def paired_smape_difference(actual: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[float, float]:
    """Mean of ``a``'s minus ``b``'s per-point sMAPE terms, and its standard error, in percent
    (paired over the same points; positive means ``a`` is worse)."""
    diff = (smape_terms(actual, pred_a) - smape_terms(actual, pred_b)) * 100.0
    if diff.size < 2:
        return float(diff.mean()) if diff.size else 0.0, math.inf
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


def binomial_band(n: int, quantile: float, z: float = 1.96) -> tuple[float, float]:
    """The coverage range (fractions) a perfectly calibrated ``quantile`` forecast lands in
    about 95 % of the time over ``n`` points (normal approximation): how much of a coverage miss
    on a short trace is luck."""
    half = z * math.sqrt(quantile * (1.0 - quantile) / max(n, 1))
    return max(quantile - half, 0.0), min(quantile + half, 1.0)

"""Request traces: readers for the public trace formats, binning into planner intervals, and
Poisson request generation from aggregate rate curves.

Formats (detected from the file by :func:`detect_format`):

* ``azure``: Azure LLM inference trace CSV, header ``TIMESTAMP,ContextTokens,GeneratedTokens``;
  the timestamp has 7 fractional digits (Python takes 6, so the last one is dropped).
* ``mooncake``: JSONL, one request per line, ``timestamp`` (ms since trace start),
  ``input_length``, ``output_length``; other keys (``hash_ids`` ...) are ignored.
* ``servegen_aggregate``: CSV with header ``window_start_s,window_s,total_rate_rps,...``; a rate
  curve (requests per second per window), not per-request rows. Read it with
  :func:`read_rate_curve`.

Every malformed row raises :class:`TraceError` naming the file, the line number and what was
expected.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

FORMATS = ("azure", "mooncake", "servegen_aggregate")
AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SERVEGEN_REQUIRED = ("window_start_s", "window_s", "total_rate_rps")


# Bounds on what a trace may ask of memory. A trace longer than this (a timestamp of 1e15 ms
# is 31,000 years) is a unit mistake, and binning it would allocate one slot per interval;
# a rate curve whose requests would not fit in memory is refused before they are drawn.
MAX_TRACE_SPAN_S = 400 * 86_400.0
MAX_BINS = 10_000_000
MAX_GENERATED_REQUESTS = 50_000_000
# A request's token count beyond this (2**31 - 1) is a broken row, not a prompt; it would not fit
# the int64 arithmetic of binning either.
MAX_TOKENS = 2**31 - 1


class TraceError(ValueError):
    """A trace file is missing, unrecognised or malformed (the message names file and line)."""


@dataclass(frozen=True)
class Trace:
    """Per-request trace. ``arrival_s`` is seconds from ``origin_s`` (sorted, starts at 0 for
    traces read from a file); ``origin_s`` is the absolute time of arrival 0 in epoch seconds
    when the trace knows it (Azure), else 0 (time of day then counts from trace start)."""

    arrival_s: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    source: str = ""
    format: str = ""
    origin_s: float = 0.0

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if self.arrival_s.size else 0.0


@dataclass(frozen=True)
class RateCurve:
    """Aggregate arrival-rate curve: one row per window (ServeGen aggregate CSV)."""

    window_start_s: np.ndarray
    window_s: np.ndarray
    rate_rps: np.ndarray
    mean_isl: np.ndarray
    mean_osl: np.ndarray
    source: str = ""
    format: str = "servegen_aggregate"

    def __len__(self) -> int:
        return int(self.window_start_s.size)


@dataclass(frozen=True)
class BinnedSeries:
    """Per-interval load: request count and mean ISL/OSL (NaN where the interval is empty).

    ``start_s`` is relative to ``origin_s``; the absolute end of interval i is
    ``origin_s + start_s[i] + interval_s``."""

    start_s: np.ndarray
    num_req: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    interval_s: float
    origin_s: float = 0.0
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.start_s.size)

    def series(self, name: str) -> np.ndarray:
        if name not in ("num_req", "isl", "osl"):
            raise ValueError(f"unknown series {name!r}; choose num_req, isl or osl")
        return getattr(self, name)

    def end_timestamps(self) -> np.ndarray:
        return self.origin_s + self.start_s + self.interval_s


# ---------------------------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------------------------


def _first_line(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            for line in fh:
                if line.strip():
                    return line.strip()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, expected a trace file") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a text file (expected CSV or JSONL)") from None
    except ValueError:  # a NUL character in the path
        raise TraceError(f"{str(path)!r}: not a valid path (it contains a NUL character)") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    raise TraceError(f"{path}: empty file, expected a trace")


def detect_format(path: str | Path) -> str:
    """``azure``, ``mooncake`` or ``servegen_aggregate``; :class:`TraceError` otherwise."""
    path = Path(path)
    first = _first_line(path)
    if first.startswith("{"):
        return "mooncake"
    cols = [c.strip() for c in first.split(",")]
    if tuple(cols[:3]) == AZURE_HEADER:
        return "azure"
    if all(c in cols for c in SERVEGEN_REQUIRED):
        return "servegen_aggregate"
    raise TraceError(
        f"{path}: line 1: unrecognised trace format; expected an Azure CSV header "
        f"'{','.join(AZURE_HEADER)}', a ServeGen aggregate header starting "
        f"'{','.join(SERVEGEN_REQUIRED)}', or Mooncake JSONL objects"
    )


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def _parse_count(raw: str, path: Path, lineno: int, column: str) -> int:
    try:
        value = int(raw.strip())
    except (ValueError, AttributeError):  # (also a number of more than 4300 digits)
        raise TraceError(
            f"{path}: line {lineno}: {column} must be a non-negative integer, got {raw[:40]!r}"
        ) from None
    if not 0 <= value <= MAX_TOKENS:
        raise TraceError(
            f"{path}: line {lineno}: {column} must be an integer from 0 to {MAX_TOKENS:,}, got {raw[:40]!r}"
        )
    return value


def _parse_azure_time(raw: str, path: Path, lineno: int) -> float:
    text = raw.strip()
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
        fmt = "%Y-%m-%d %H:%M:%S.%f"
    else:
        fmt = "%Y-%m-%d %H:%M:%S"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise TraceError(
            f"{path}: line {lineno}: TIMESTAMP must look like '2023-11-16 18:17:03.9799600', got {raw!r}"
        ) from None


def _finish(times: list[float], isl: list[int], osl: list[int], path: Path, fmt: str) -> Trace:
    if not times:
        raise TraceError(f"{path}: no requests in the trace")
    t = np.asarray(times, dtype=float)
    i = np.asarray(isl, dtype=np.int64)
    o = np.asarray(osl, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t, i, o = t[order], i[order], o[order]
    _check_span(float(t[-1] - t[0]), path, "the timestamps" + (" (milliseconds)" if fmt == "mooncake" else ""))
    origin = float(t[0])
    return Trace(t - origin, i, o, source=str(path), format=fmt, origin_s=origin if fmt == "azure" else 0.0)


def _check_span(span_s: float, path: Path | str, what: str) -> None:
    if not span_s <= MAX_TRACE_SPAN_S:
        raise TraceError(
            f"{path}: {what} span {span_s / 86_400:.3g} days, more than the {MAX_TRACE_SPAN_S / 86_400:.0f} a "
            "trace may cover; check the timestamps' unit or cut the trace"
        )


def _read_azure(path: Path) -> Trace:
    times: list[float] = []
    isl: list[int] = []
    osl: list[int] = []
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if lineno == 1:
                continue  # header, checked by detect_format
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise TraceError(
                    f"{path}: line {lineno}: expected 3 columns TIMESTAMP,ContextTokens,GeneratedTokens, got {len(row)}"
                )
            times.append(_parse_azure_time(row[0], path, lineno))
            isl.append(_parse_count(row[1], path, lineno, "ContextTokens"))
            osl.append(_parse_count(row[2], path, lineno, "GeneratedTokens"))
    return _finish(times, isl, osl, path, "azure")


def _json_number(obj: dict, key: str, path: Path, lineno: int) -> float:
    if key not in obj:
        raise TraceError(
            f"{path}: line {lineno}: missing key {key!r} (expected timestamp, input_length, output_length)"
        )
    value = obj[key]
    try:  # float() of an int too large for a double raises OverflowError
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise TraceError(f"{path}: line {lineno}: {key} must be a non-negative number, got {str(value)[:40]!r}")
    return number


def _json_count(obj: dict, key: str, path: Path, lineno: int) -> int:
    value = _json_number(obj, key, path, lineno)
    if value > MAX_TOKENS:
        raise TraceError(f"{path}: line {lineno}: {key} must be at most {MAX_TOKENS:,} tokens, got {value:g}")
    return int(value)


def _read_mooncake(path: Path) -> Trace:
    times: list[float] = []
    isl: list[int] = []
    osl: list[int] = []
    with path.open("r", encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else "a number too long"
                raise TraceError(f"{path}: line {lineno}: expected one JSON object per line ({why})") from None
            if not isinstance(obj, dict):
                raise TraceError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
            times.append(float(_json_number(obj, "timestamp", path, lineno)) / 1000.0)
            isl.append(_json_count(obj, "input_length", path, lineno))
            osl.append(_json_count(obj, "output_length", path, lineno))
    return _finish(times, isl, osl, path, "mooncake")


def read_trace(path: str | Path) -> Trace:
    """Read a per-request trace (Azure CSV or Mooncake JSONL)."""
    path = Path(path)
    fmt = detect_format(path)
    with _reading(path):
        if fmt == "azure":
            return _read_azure(path)
        if fmt == "mooncake":
            return _read_mooncake(path)
    raise TraceError(f"{path}: is a ServeGen aggregate rate curve, not per-request rows; use read_rate_curve")


def _float(raw: str, path: Path, lineno: int, column: str, *, allow_empty: bool = False) -> float:
    text = raw.strip()
    if allow_empty and text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}: line {lineno}: {column} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{path}: line {lineno}: {column} must be a finite non-negative number, got {raw!r}")
    return value


def read_rate_curve(path: str | Path) -> RateCurve:
    """Read a ServeGen aggregate CSV (``window_start_s,window_s,total_rate_rps,...``)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt != "servegen_aggregate":
        raise TraceError(f"{path}: is a {fmt} per-request trace, not a ServeGen aggregate rate curve")
    with _reading(path):
        return _read_rate_curve(path)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """What the file layer can raise past the first line, as a TraceError naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: byte {exc.start} is not UTF-8 text; expected a CSV or JSONL trace") from None
    except csv.Error as exc:
        raise TraceError(f"{path}: not a readable CSV ({exc})") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_rate_curve(path: Path) -> RateCurve:
    starts: list[float] = []
    widths: list[float] = []
    rates: list[float] = []
    isls: list[float] = []
    osls: list[float] = []
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [c.strip() for c in next(row for row in reader if any(c.strip() for c in row))]
        missing = [name for name in SERVEGEN_REQUIRED if name not in header]
        if missing:
            raise TraceError(f"{path}: the header has no column {', '.join(missing)}")
        idx = {name: header.index(name) for name in SERVEGEN_REQUIRED}
        i_isl = header.index("mean_input_tokens_est") if "mean_input_tokens_est" in header else None
        i_osl = header.index("mean_output_tokens_est") if "mean_output_tokens_est" in header else None
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise TraceError(
                    f"{path}: line {lineno}: expected {len(header)} columns as in the header, got {len(row)}"
                )
            starts.append(_float(row[idx["window_start_s"]], path, lineno, "window_start_s"))
            width = _float(row[idx["window_s"]], path, lineno, "window_s")
            if width <= 0:
                raise TraceError(f"{path}: line {lineno}: window_s must be positive, got {row[idx['window_s']]!r}")
            widths.append(width)
            rates.append(_float(row[idx["total_rate_rps"]], path, lineno, "total_rate_rps"))
            isls.append(
                _float(row[i_isl], path, lineno, "mean_input_tokens_est", allow_empty=True)
                if i_isl is not None
                else math.nan
            )
            osls.append(
                _float(row[i_osl], path, lineno, "mean_output_tokens_est", allow_empty=True)
                if i_osl is not None
                else math.nan
            )
    if not starts:
        raise TraceError(f"{path}: no windows in the rate curve")
    s = np.asarray(starts)
    _check_span(float(s[-1] - s[0] + widths[-1]), path, "window_start_s")
    if np.any(np.diff(s) <= 0):
        bad = int(np.argmax(np.diff(s) <= 0)) + 3
        raise TraceError(f"{path}: line {bad}: window_start_s must increase from row to row")
    return RateCurve(s, np.asarray(widths), np.asarray(rates), np.asarray(isls), np.asarray(osls), source=str(path))


# ---------------------------------------------------------------------------------------------
# Binning
# ---------------------------------------------------------------------------------------------


def bin_trace(trace: Trace, interval_s: float, *, drop_partial: bool = True) -> BinnedSeries:
    """Count requests and average ISL/OSL per interval ``[k*interval_s, (k+1)*interval_s)``.

    With ``drop_partial`` (default) the last interval is kept only when the trace reaches its
    end, so that a half-observed interval does not read as a drop in load."""
    if not interval_s > 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    t = trace.arrival_s
    if t.size == 0:
        raise TraceError(f"{trace.source}: no requests to bin")
    span = float(t[-1])
    if not span / interval_s <= MAX_BINS:
        raise TraceError(
            f"{trace.source}: {span:,.0f} s in {interval_s:g} s intervals is more than {MAX_BINS:,} intervals; "
            "use a longer interval or a shorter trace"
        )
    n_bins = math.floor(span / interval_s) if drop_partial else math.floor(span / interval_s) + 1
    n_bins = max(n_bins, 1)
    idx = np.floor(t / interval_s).astype(np.int64)
    keep = idx < n_bins
    idx = idx[keep]
    counts = np.bincount(idx, minlength=n_bins).astype(float)
    isl_sum = np.bincount(idx, weights=trace.isl[keep].astype(float), minlength=n_bins)
    osl_sum = np.bincount(idx, weights=trace.osl[keep].astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        isl = np.where(counts > 0, isl_sum / np.maximum(counts, 1), np.nan)
        osl = np.where(counts > 0, osl_sum / np.maximum(counts, 1), np.nan)
    starts = np.arange(n_bins, dtype=float) * interval_s
    return BinnedSeries(starts, counts, isl, osl, float(interval_s), trace.origin_s, trace.source)


def bin_rate_curve(curve: RateCurve, interval_s: float | None = None) -> BinnedSeries:
    """Expected request count per interval (rate x window, summed) and rate-weighted mean
    lengths. ``interval_s`` must be a multiple of the curve's window (default: the window)."""
    window = float(curve.window_s[0])
    if np.any(np.abs(curve.window_s - window) > 1e-9):
        raise TraceError(f"{curve.source}: windows of different widths; cannot bin")
    if interval_s is None:
        interval_s = window
    ratio = interval_s / window
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        raise TraceError(
            f"{curve.source}: --interval-s {interval_s:g} must be a multiple of the curve's {window:g} s window"
        )
    k = round(ratio)
    rel = curve.window_start_s - curve.window_start_s[0]
    if not float(rel[-1]) / interval_s <= MAX_BINS:
        raise TraceError(
            f"{curve.source}: more than {MAX_BINS:,} intervals of {interval_s:g} s; use a longer interval"
        )
    idx = np.floor(rel / interval_s + 1e-9).astype(np.int64)
    n_bins = int(idx[-1]) + 1
    per_window = curve.rate_rps * curve.window_s
    counts = np.bincount(idx, weights=per_window, minlength=n_bins)
    windows_in_bin = np.bincount(idx, minlength=n_bins)
    if k > 1 and windows_in_bin[-1] < k:  # partial last bin
        n_bins -= 1
        counts = counts[:n_bins]
    means = []
    for col in (curve.mean_isl, curve.mean_osl):
        ok = np.isfinite(col)
        w = np.where(ok, per_window, 0.0)
        num = np.bincount(idx, weights=np.where(ok, col, 0.0) * w, minlength=len(windows_in_bin))[:n_bins]
        den = np.bincount(idx, weights=w, minlength=len(windows_in_bin))[:n_bins]
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
    starts = curve.window_start_s[0] + np.arange(n_bins, dtype=float) * interval_s
    return BinnedSeries(starts, counts, means[0], means[1], float(interval_s), 0.0, curve.source)


def read_binned(path: str | Path, interval_s: float) -> BinnedSeries:
    """Any supported trace file, binned into ``interval_s`` intervals."""
    fmt = detect_format(path)
    if fmt == "servegen_aggregate":
        return bin_rate_curve(read_rate_curve(path), interval_s)
    return bin_trace(read_trace(path), interval_s)


# ---------------------------------------------------------------------------------------------
# Requests from a rate curve
# ---------------------------------------------------------------------------------------------


def expected_requests(curve: RateCurve, start_s: float | None = None, end_s: float | None = None) -> float:
    """The curve's expected request count over ``[start_s, end_s)`` (default: all of it)."""
    ends = curve.window_start_s + curve.window_s
    lo = float(curve.window_start_s[0]) if start_s is None else float(start_s)
    hi = float(ends[-1]) if end_s is None else float(end_s)
    overlap = np.clip(np.minimum(ends, hi) - np.maximum(curve.window_start_s, lo), 0.0, None)
    return float(np.sum(curve.rate_rps * overlap))


def requests_from_rate_curve(
    curve: RateCurve,
    lengths: Trace,
    seed: int,
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    rate_scale: float = 1.0,
    match_mean_lengths: bool = False,
) -> Trace:
    """Poisson arrivals at the curve's rate times ``rate_scale`` over ``[start_s, end_s)``
    (default: the whole curve), with (ISL, OSL) pairs drawn with replacement from a real
    per-request trace.

    ``rate_scale`` multiplies the rate: the superposition of independent Poisson streams, so
    ``rate_scale=K`` is exactly ``K`` independent users of the curve's kind (and a fraction
    thins it). With ``match_mean_lengths`` the drawn ISL and OSL of each window are multiplied
    by one factor per window and column, so that their expected mean is the window's
    ``mean_isl`` / ``mean_osl`` (ServeGen's estimate; the lengths trace keeps the shape of the
    distribution), rounded to whole tokens, at least 1; a window without an estimate takes the
    curve's rate-weighted mean of the estimates (unscaled when the curve has none).

    ``arrival_s`` of the result counts from ``start_s`` (so it need not start at exactly 0);
    ``origin_s`` is ``start_s``. Deterministic for a given seed."""
    if len(lengths) == 0:
        raise TraceError(f"{lengths.source}: no requests to draw lengths from")
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise ValueError(f"rate_scale must be a finite number > 0, got {rate_scale}")
    ends = curve.window_start_s + curve.window_s
    lo = float(curve.window_start_s[0]) if start_s is None else float(start_s)
    hi = float(ends[-1]) if end_s is None else float(end_s)
    if hi <= lo:
        raise ValueError(f"end_s ({hi}) must be after start_s ({lo})")
    expected = expected_requests(curve, lo, hi) * rate_scale
    if not expected <= MAX_GENERATED_REQUESTS:
        raise TraceError(
            f"{curve.source}: the rate curve asks for about {expected:,.0f} requests, more than the "
            f"{MAX_GENERATED_REQUESTS:,} a replay draws; replay a shorter stretch (--duration-s) or a lower load"
        )
    factors = (
        [_mean_factors(curve.mean_isl, curve, lengths.isl), _mean_factors(curve.mean_osl, curve, lengths.osl)]
        if match_mean_lengths
        else None
    )
    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []
    windows: list[np.ndarray] = []
    for w, (w0, w1, rate) in enumerate(zip(curve.window_start_s, ends, curve.rate_rps, strict=True)):
        a, b = max(w0, lo), min(w1, hi)
        if b <= a or rate <= 0:
            continue
        n = rng.poisson(rate * rate_scale * (b - a))
        if n:
            chunks.append(np.sort(rng.uniform(a, b, n)))
            windows.append(np.full(n, w, dtype=np.int32))
    arrivals = np.concatenate(chunks) - lo if chunks else np.zeros(0)
    pick = rng.integers(0, len(lengths), arrivals.size)
    isl, osl = lengths.isl[pick], lengths.osl[pick]
    note = ""
    if factors is not None and arrivals.size:
        window = np.concatenate(windows)
        isl = np.maximum(np.rint(isl * factors[0][window]), 1).astype(np.int64)
        osl = np.maximum(np.rint(osl * factors[1][window]), 1).astype(np.int64)
        note = ", rescaled to the curve's mean lengths per window"
    return Trace(
        arrivals,
        isl.copy(),
        osl.copy(),
        source=f"{curve.source} (Poisson, seed {seed}) + lengths from {lengths.source}{note}",
        format="generated",
        origin_s=lo,
    )


def _mean_factors(target: np.ndarray, curve: RateCurve, drawn: np.ndarray) -> np.ndarray:
    """Per window, the factor that takes the mean of ``drawn`` to ``target`` (NaN windows:
    the rate-weighted mean of the known targets; all NaN: 1)."""
    known = np.isfinite(target) & (target > 0)
    weight = curve.rate_rps * curve.window_s * known
    if not known.any() or weight.sum() <= 0:
        return np.ones(target.size)
    fill = float(np.sum(np.where(known, target, 0.0) * weight) / weight.sum())
    mean = float(np.mean(drawn))
    return np.where(known, target, fill) / mean if mean > 0 else np.ones(target.size)

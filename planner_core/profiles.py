"""Pre-deployment profiling results -> prefill and decode performance models.

A profile directory has Dynamo's layout::

    <dir>/selected_prefill_interpolation/raw_data.npz   prefill_isl, prefill_ttft (ms),
                                                        prefill_thpt_per_gpu (tokens/s/GPU)
    <dir>/selected_decode_interpolation/raw_data.npz    x_kv_usage, y_context_length,
                                                        z_itl (ms), z_thpt_per_gpu, max_kv_tokens

Newer Dynamo versions may write ``prefill_raw_data.json`` / ``decode_raw_data.json`` with
the same keys; both layouts load.

Two decode models are built once per profile, and every lookup after that is table
arithmetic (no scipy call on the hot path):

* :class:`DynamoDecodeGrid` is Dynamo's own: a 100 x 100 cubic ``griddata`` surface over
  (KV usage, context length), NaN cells filled with the nearest sample, lookups rounded to the
  nearest cell. The ``dynamo`` sizing policy uses it so that its numbers match Dynamo's.
* :class:`DecodeSurface` is ours: along KV usage a shape-preserving (PCHIP) curve through each
  measured context level, and linear between context levels. It passes through every measured
  point and is monotone wherever the measurements are, which the cubic grid is not.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import PchipInterpolator, griddata, interp1d
from scipy.spatial import QhullError

FloatArray = NDArray[np.float64]

PREFILL_SUBDIR = "selected_prefill_interpolation"
DECODE_SUBDIR = "selected_decode_interpolation"
PREFILL_KEYS = ("prefill_isl", "prefill_ttft", "prefill_thpt_per_gpu")
DECODE_KEYS = ("x_kv_usage", "y_context_length", "z_itl", "z_thpt_per_gpu", "max_kv_tokens")
HOW_TO_PRODUCE = (
    "run Dynamo's pre-deployment profiling (profile_sla) for your model and hardware and pass "
    "its output directory with --profile-results-dir, or omit the flag to use the bundled "
    "H200 Llama-3.1-8B-FP8 profile"
)


# KV usages of one context level closer than this are one measurement (the slopes between them overflow).
MIN_KV_SPACING = 1e-6
# Longest prompt a profile may cover (10M tokens: ten times today's longest context windows).
MAX_PROFILE_ISL = 10_000_000


class ProfileError(ValueError):
    """The profiling results are missing or malformed; the message says what was expected."""


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def _load_arrays(directory: Path, subdir: str, json_name: str, keys: tuple[str, ...]) -> dict[str, FloatArray]:
    npz_path = directory / subdir / "raw_data.npz"
    json_path = directory / json_name
    if npz_path.is_file():
        try:
            with np.load(npz_path, allow_pickle=False) as raw:
                data = {k: np.asarray(raw[k]) for k in raw.files}
        except Exception as exc:  # a truncated or non-npz file
            raise ProfileError(f"{npz_path}: cannot be read as a numpy .npz archive ({exc}); {HOW_TO_PRODUCE}") from exc
        source = npz_path
    elif json_path.is_file():
        try:
            loaded = json.loads(json_path.read_text())
            data = {k: np.asarray(v) for k, v in loaded.items()}
        except Exception as exc:
            raise ProfileError(f"{json_path}: cannot be read as JSON ({exc}); {HOW_TO_PRODUCE}") from exc
        source = json_path
    else:
        if not directory.is_dir():
            raise ProfileError(f"profile directory {directory} does not exist; {HOW_TO_PRODUCE}")
        raise ProfileError(
            f"profile directory {directory} has neither {subdir}/raw_data.npz nor {json_name}; {HOW_TO_PRODUCE}"
        )
    missing = [k for k in keys if k not in data]
    if missing:
        raise ProfileError(
            f"{source}: missing key(s) {', '.join(missing)}; expected keys {', '.join(keys)}; {HOW_TO_PRODUCE}"
        )
    out: dict[str, FloatArray] = {}
    for key in keys:
        try:
            arr = np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{source}: key {key} is not numeric ({exc})") from exc
        if arr.ndim != 1:
            raise ProfileError(f"{source}: key {key} must be a 1-D array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ProfileError(f"{source}: key {key} contains NaN or infinite values; re-run profiling")
        out[key] = arr
    return out


def _check_same_length(source: str, arrays: dict[str, FloatArray], keys: tuple[str, ...]) -> None:
    lengths = {k: arrays[k].shape[0] for k in keys}
    if len(set(lengths.values())) != 1:
        raise ProfileError(f"{source}: arrays must have the same length, got {lengths}")


# ---------------------------------------------------------------------------------------------
# Prefill
# ---------------------------------------------------------------------------------------------


# The top of the profile the growth beyond it is fitted to: at least this many points, and the
# upper half of the measured ISLs (where attention's quadratic term shows; the bottom is launch
# overhead and a rising throughput).
GROWTH_FIT_MIN_POINTS = 4


@dataclass(frozen=True)
class PrefillGrowth:
    """How prefill time grows beyond the longest profiled prompt.

    ``fit`` is a least-squares ``a + b*isl + c*isl**2`` through the top half of the profile
    (at least :data:`GROWTH_FIT_MIN_POINTS` points): a linear term for the per-token work
    (MLPs, projections) and a quadratic one for attention over the prompt. The curvature is
    kept non-negative (attention cannot make a longer prompt cheaper per token); a fit that
    comes out concave is refitted as a straight line. Beyond the profile the TTFT is the last
    measured TTFT plus the fit's growth from there, ``ttft(hi) + fit(isl) - fit(hi)``: continuous
    at the last point and increasing (should noise make the fit's slope at ``hi`` not positive,
    the time per token there, ``ttft(hi) / hi``, replaces it).

    Assumptions, stated in docs/simulator.md: the engine handles any prompt length (no context
    limit), and the regime at the top of the profile (batch of one, chunking if any, the same
    kernels) continues unchanged; nothing is measured out there."""

    anchor_isl: float
    anchor_ttft_ms: float
    slope_ms_per_token: float  # d ttft / d isl at the anchor
    curvature_ms_per_token2: float  # c >= 0

    @classmethod
    def fit(cls, isl: FloatArray, ttft_ms: FloatArray) -> PrefillGrowth:
        isl = np.asarray(isl, dtype=np.float64)
        ttft_ms = np.asarray(ttft_ms, dtype=np.float64)
        k = min(isl.size, max(GROWTH_FIT_MIN_POINTS, (isl.size + 1) // 2))
        x, y = isl[-k:], ttft_ms[-k:]
        hi, t_hi = float(isl[-1]), float(ttft_ms[-1])
        _, b, c = np.linalg.lstsq(np.vstack([np.ones(k), x, x * x]).T, y, rcond=None)[0]
        if c < 0:
            c = 0.0
            _, b = np.linalg.lstsq(np.vstack([np.ones(k), x]).T, y, rcond=None)[0]
        slope = float(b + 2.0 * c * hi)
        if slope <= 0:  # noise at the top of the profile: time proportional to tokens instead
            slope = t_hi / hi
        return cls(hi, t_hi, slope, float(c))

    def ttft_ms(self, isl: float) -> float:
        """Extrapolated TTFT at ``isl`` >= the anchor (at the anchor: the measured TTFT)."""
        dx = float(isl) - self.anchor_isl
        return self.anchor_ttft_ms + self.slope_ms_per_token * dx + self.curvature_ms_per_token2 * dx * dx


@dataclass(frozen=True)
class PrefillCurves:
    """TTFT (ms) and throughput (tokens/s/GPU) of one prefill engine as functions of ISL,
    tabulated on every integer ISL of the measured range, so a lookup is two array reads.

    Below the shortest profiled ISL the lookup is clamped. Above the longest, ``growth`` (when
    set) extrapolates the TTFT (:class:`PrefillGrowth`) and the throughput follows it, scaled
    so that tokens / TTFT stays what it is at the last point (``thpt(hi) * (isl / ttft(isl)) /
    (hi / ttft(hi))``); without ``growth`` (Dynamo's curves) the lookup is clamped there too."""

    kind: str
    min_isl: float
    max_isl: float
    _ttft_table: FloatArray = field(repr=False)
    _thpt_table: FloatArray = field(repr=False)
    growth: PrefillGrowth | None = None

    @classmethod
    def fit(
        cls, isl: FloatArray, ttft_ms: FloatArray, thpt_per_gpu: FloatArray, kind: str, extrapolate: bool = False
    ) -> PrefillCurves:
        lo, hi = float(isl[0]), float(isl[-1])
        grid = np.clip(np.arange(math.floor(lo), math.ceil(hi) + 1, dtype=np.float64), lo, hi)
        if kind == "cubic":
            ttft_table = interp1d(isl, ttft_ms, kind="cubic")(grid)
            thpt_table = interp1d(isl, thpt_per_gpu, kind="cubic")(grid)
        else:
            ttft_table = PchipInterpolator(isl, ttft_ms)(grid)
            thpt_table = PchipInterpolator(isl, thpt_per_gpu)(grid)
        growth = PrefillGrowth.fit(isl, ttft_ms) if extrapolate else None
        return cls(kind, lo, hi, np.asarray(ttft_table), np.asarray(thpt_table), growth)

    def _lookup(self, table: FloatArray, isl: float) -> float:
        x = min(max(float(isl), self.min_isl), self.max_isl) - math.floor(self.min_isl)
        i = int(x)
        frac = x - i
        if frac == 0.0 or i + 1 >= table.shape[0]:
            return float(table[min(i, table.shape[0] - 1)])
        return float(table[i] + (table[i + 1] - table[i]) * frac)

    def ttft_ms(self, isl: float) -> float:
        """TTFT in ms at this ISL (one request, no queueing): profiled, or extrapolated beyond it."""
        if self.growth is not None and isl > self.max_isl:
            return self.growth.ttft_ms(isl)
        return self._lookup(self._ttft_table, isl)

    def thpt_per_gpu(self, isl: float) -> float:
        """Prefill throughput in tokens/s/GPU at this ISL: profiled, or extrapolated beyond it."""
        if self.growth is not None and isl > self.max_isl:
            g = self.growth
            at_hi = self._lookup(self._thpt_table, self.max_isl)
            return at_hi * (float(isl) / g.ttft_ms(isl)) / (g.anchor_isl / g.anchor_ttft_ms)
        return self._lookup(self._thpt_table, isl)

    def max_isl_within(self, ttft_ms: float) -> float:
        """The longest prompt whose TTFT at concurrency 1 is at most ``ttft_ms`` (the TTFT
        curve is increasing above the profile; inside it the first crossing counts). ``inf``
        when no prompt is too long (no extrapolation and the whole profile fits); 0 when even
        the shortest profiled prompt takes longer."""
        table = self._ttft_table
        over = np.flatnonzero(table > ttft_ms)
        if over.size:
            i = int(over[0])
            if i == 0:
                return 0.0
            # linear between the last integer ISL within and the first beyond, as _lookup is
            frac = (ttft_ms - float(table[i - 1])) / float(table[i] - table[i - 1])
            return math.floor(self.min_isl) + i - 1 + frac
        g = self.growth
        if g is None:
            return math.inf
        # anchor + s*dx + c*dx^2 = ttft_ms, the positive root
        need = ttft_ms - g.anchor_ttft_ms
        s, c = g.slope_ms_per_token, g.curvature_ms_per_token2
        dx = need / s if c == 0 else (-s + math.sqrt(s * s + 4.0 * c * need)) / (2.0 * c)
        return g.anchor_isl + max(dx, 0.0)


@dataclass(frozen=True)
class PrefillProfile:
    """Prefill performance. ``ttft_ms``/``thpt_per_gpu`` use a shape-preserving (PCHIP) curve:
    exact at the measured ISLs and monotone wherever the measurements are, extrapolated beyond
    the longest measured prompt (:class:`PrefillGrowth`). ``dynamo`` holds Dynamo's cubic
    spline (which overshoots between points, and is clamped to the measured range as Dynamo
    clamps it) for the ``dynamo`` policy."""

    isl: FloatArray
    ttft_ms_points: FloatArray
    thpt_per_gpu_points: FloatArray
    curves: PrefillCurves
    dynamo: PrefillCurves

    @classmethod
    def from_arrays(
        cls, isl: FloatArray, ttft_ms: FloatArray, thpt_per_gpu: FloatArray, source: str = "prefill profile"
    ) -> PrefillProfile:
        arrays = {"prefill_isl": isl, "prefill_ttft": ttft_ms, "prefill_thpt_per_gpu": thpt_per_gpu}
        _check_same_length(source, arrays, PREFILL_KEYS)
        if isl.shape[0] < 4:
            raise ProfileError(f"{source}: need at least 4 prefill points for a cubic fit, got {isl.shape[0]}")
        if np.any(np.diff(isl) <= 0):
            raise ProfileError(f"{source}: prefill_isl must be strictly increasing, got {isl.tolist()[:10]}")
        if isl[0] < 1 or isl[-1] > MAX_PROFILE_ISL:
            # the curves are tabulated on every integer ISL of the range: bounded, so is the memory
            raise ProfileError(
                f"{source}: prefill_isl must lie between 1 and {MAX_PROFILE_ISL:,} tokens, got "
                f"{isl[0]:g} to {isl[-1]:g}; {HOW_TO_PRODUCE}"
            )
        if np.any(ttft_ms <= 0) or np.any(thpt_per_gpu <= 0):
            raise ProfileError(f"{source}: prefill_ttft and prefill_thpt_per_gpu must be positive")
        return cls(
            isl,
            ttft_ms,
            thpt_per_gpu,
            PrefillCurves.fit(isl, ttft_ms, thpt_per_gpu, "pchip", extrapolate=True),
            PrefillCurves.fit(isl, ttft_ms, thpt_per_gpu, "cubic"),
        )

    @property
    def min_isl(self) -> float:
        return self.curves.min_isl

    @property
    def max_isl(self) -> float:
        return self.curves.max_isl

    def ttft_ms(self, isl: float) -> float:
        return self.curves.ttft_ms(isl)

    def thpt_per_gpu(self, isl: float) -> float:
        return self.curves.thpt_per_gpu(isl)

    def max_isl_within(self, ttft_ms: float) -> float:
        """The longest prompt one engine prefills within ``ttft_ms`` at concurrency 1."""
        return self.curves.max_isl_within(ttft_ms)


# ---------------------------------------------------------------------------------------------
# Decode
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """Where a decode engine runs when sized for an ITL target."""

    thpt_per_gpu: float
    itl_ms: float
    kv_usage: float
    meets_target: bool


@dataclass(frozen=True)
class DynamoDecodeGrid:
    """Dynamo's decode model: 100x100 cubic griddata, nearest-filled, rounded lookups."""

    itl_ms_grid: FloatArray  # [context index, kv index]
    thpt_grid: FloatArray
    kv_axis: FloatArray
    context_axis: FloatArray
    max_kv_tokens: float
    resolution: int

    @classmethod
    def build(
        cls,
        kv: FloatArray,
        ctx: FloatArray,
        itl: FloatArray,
        thpt: FloatArray,
        max_kv_tokens: float,
        resolution: int = 100,
    ) -> DynamoDecodeGrid:
        kv_axis = np.linspace(0.0, 1.0, resolution)
        context_axis = np.linspace(0.0, float(np.max(ctx)), resolution)
        mesh_kv, mesh_ctx = np.meshgrid(kv_axis, context_axis)

        def surface(values: FloatArray) -> FloatArray:
            cubic = griddata((kv, ctx), values, (mesh_kv, mesh_ctx), method="cubic")
            holes = np.isnan(cubic)
            if np.any(holes):
                nearest = griddata((kv, ctx), values, (mesh_kv, mesh_ctx), method="nearest")
                cubic[holes] = nearest[holes]
            return np.asarray(cubic, dtype=np.float64)

        return cls(surface(itl), surface(thpt), kv_axis, context_axis, float(max_kv_tokens), resolution)

    def _index(self, value: float, axis: FloatArray) -> int:
        step = axis[1] - axis[0]
        return int(min(max(round((value - axis[0]) / step), 0), self.resolution - 1))

    def _cell(self, concurrency: float, context_length: float) -> tuple[int, int]:
        kv_usage = concurrency * context_length / self.max_kv_tokens
        return self._index(context_length, self.context_axis), self._index(kv_usage, self.kv_axis)

    def itl_ms(self, concurrency: float, context_length: float) -> float:
        iy, ix = self._cell(concurrency, context_length)
        return float(self.itl_ms_grid[iy, ix])

    def thpt_per_gpu(self, concurrency: float, context_length: float) -> float:
        iy, ix = self._cell(concurrency, context_length)
        return float(self.thpt_grid[iy, ix])

    def best_operating_point(self, itl_target_ms: float, context_length: float) -> OperatingPoint:
        """Dynamo's scan: the highest KV usage whose ITL meets the target, else the lowest."""
        iy = self._index(context_length, self.context_axis)
        row = self.itl_ms_grid[iy]
        ok = np.flatnonzero(row <= itl_target_ms)
        if ok.size:
            ix = int(ok[-1])
            return OperatingPoint(float(self.thpt_grid[iy, ix]), float(row[ix]), float(self.kv_axis[ix]), True)
        return OperatingPoint(float(self.thpt_grid[iy, 0]), float(row[0]), float(self.kv_axis[0]), False)


@dataclass(frozen=True)
class DecodeSurface:
    """Our decode model: exact at measured points, monotone where the measurements are.

    For each measured context level a PCHIP curve over KV usage (held flat outside the
    measured KV range), tabulated on ``kv_resolution`` points; between context levels the two
    neighbouring curves are blended linearly; outside the context range the nearest level is
    used.
    """

    levels: FloatArray  # measured context lengths, ascending
    kv_axis: FloatArray
    itl_ms_rows: FloatArray  # [level, kv]
    thpt_rows: FloatArray
    max_kv_tokens: float
    points: tuple[FloatArray, FloatArray, FloatArray, FloatArray]  # kv, ctx, itl, thpt as measured
    _kv_list: list[float] = field(repr=False, default_factory=list)

    @classmethod
    def build(
        cls,
        kv: FloatArray,
        ctx: FloatArray,
        itl: FloatArray,
        thpt: FloatArray,
        max_kv_tokens: float,
        kv_resolution: int = 2001,
        source: str = "decode profile",
    ) -> DecodeSurface:
        levels = np.unique(ctx)
        # The axis holds every measured KV usage, so lookups at measured points are exact.
        kv_axis = np.unique(np.concatenate([np.linspace(0.0, 1.0, kv_resolution), np.clip(kv, 0.0, 1.0)]))
        itl_rows = np.empty((levels.size, kv_axis.size))
        thpt_rows = np.empty((levels.size, kv_axis.size))
        for i, level in enumerate(levels):
            mask = ctx == level
            order = np.argsort(kv[mask])
            kv_level = kv[mask][order]
            if kv_level.size < 2:
                raise ProfileError(f"{source}: context length {level:g} has {kv_level.size} point(s); need at least 2")
            if np.any(np.diff(kv_level) < MIN_KV_SPACING):
                raise ProfileError(
                    f"{source}: x_kv_usage values closer than {MIN_KV_SPACING:g} (or repeated) at context length "
                    f"{level:g}; keep one measurement per KV usage; {HOW_TO_PRODUCE}"
                )
            for rows, values in ((itl_rows, itl[mask][order]), (thpt_rows, thpt[mask][order])):
                curve = PchipInterpolator(kv_level, values, extrapolate=False)
                clamped = np.clip(kv_axis, kv_level[0], kv_level[-1])
                rows[i] = curve(clamped)
        return cls(levels, kv_axis, itl_rows, thpt_rows, float(max_kv_tokens), (kv, ctx, itl, thpt), kv_axis.tolist())

    def _row_weights(self, context_length: float) -> tuple[int, int, float]:
        levels = self.levels
        c = min(max(float(context_length), float(levels[0])), float(levels[-1]))
        hi = int(np.searchsorted(levels, c, side="left"))
        if hi == 0:
            return 0, 0, 0.0
        lo = hi - 1
        if levels[hi] == c:
            return hi, hi, 0.0
        return lo, hi, (c - float(levels[lo])) / float(levels[hi] - levels[lo])

    def _row(self, rows: FloatArray, context_length: float) -> FloatArray:
        lo, hi, w = self._row_weights(context_length)
        if w == 0.0:
            return rows[lo]
        return rows[lo] * (1.0 - w) + rows[hi] * w

    def _at(self, rows: FloatArray, kv_usage: float, context_length: float) -> float:
        lo, hi, w = self._row_weights(context_length)
        axis = self._kv_list
        x = min(max(float(kv_usage), 0.0), 1.0)
        i = min(max(bisect_right(axis, x) - 1, 0), len(axis) - 2)
        f = (x - axis[i]) / (axis[i + 1] - axis[i])

        def on_row(r: int) -> float:
            return float(rows[r, i] + (rows[r, i + 1] - rows[r, i]) * f)

        value = on_row(lo)
        if w:
            value = value * (1.0 - w) + on_row(hi) * w
        return value

    def kv_usage(self, concurrency: float, context_length: float) -> float:
        return concurrency * context_length / self.max_kv_tokens

    def itl_ms_at_kv(self, kv_usage: float, context_length: float) -> float:
        return self._at(self.itl_ms_rows, kv_usage, context_length)

    def thpt_per_gpu_at_kv(self, kv_usage: float, context_length: float) -> float:
        return self._at(self.thpt_rows, kv_usage, context_length)

    def itl_ms(self, concurrency: float, context_length: float) -> float:
        return self.itl_ms_at_kv(self.kv_usage(concurrency, context_length), context_length)

    def thpt_per_gpu(self, concurrency: float, context_length: float) -> float:
        return self.thpt_per_gpu_at_kv(self.kv_usage(concurrency, context_length), context_length)

    def best_operating_point(
        self, itl_target_ms: float, context_length: float, max_kv_usage: float = 1.0
    ) -> OperatingPoint:
        """Highest throughput per GPU among KV usages up to ``max_kv_usage`` whose ITL meets the
        target. Planning below full KV leaves room for the concurrency to fluctuate: a full
        cache makes new requests wait for admission, and that wait is TTFT."""
        itl_row = self._row(self.itl_ms_rows, context_length)
        thpt_row = self._row(self.thpt_rows, context_length)
        ok = itl_row <= itl_target_ms
        if max_kv_usage < 1.0:
            ok &= self.kv_axis <= max_kv_usage
        if not np.any(ok):
            return OperatingPoint(float(thpt_row[0]), float(itl_row[0]), 0.0, False)
        feasible = np.where(ok, thpt_row, -np.inf)
        ix = int(np.argmax(feasible))
        return OperatingPoint(float(thpt_row[ix]), float(itl_row[ix]), float(self.kv_axis[ix]), True)


# ---------------------------------------------------------------------------------------------
# The whole profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodeProfile:
    surface: DecodeSurface
    dynamo_grid: DynamoDecodeGrid
    max_kv_tokens: float

    @classmethod
    def from_arrays(
        cls,
        kv: FloatArray,
        ctx: FloatArray,
        itl_ms: FloatArray,
        thpt_per_gpu: FloatArray,
        max_kv_tokens: float,
        source: str = "decode profile",
    ) -> DecodeProfile:
        arrays = {"x_kv_usage": kv, "y_context_length": ctx, "z_itl": itl_ms, "z_thpt_per_gpu": thpt_per_gpu}
        _check_same_length(source, arrays, DECODE_KEYS[:4])
        if kv.shape[0] < 4:
            raise ProfileError(f"{source}: need at least 4 decode points, got {kv.shape[0]}")
        if np.any(kv < 0) or np.any(kv > 1.5):
            raise ProfileError(f"{source}: x_kv_usage must be a fraction of KV capacity in [0, 1]")
        if np.any(ctx <= 0) or np.any(itl_ms <= 0) or np.any(thpt_per_gpu <= 0):
            raise ProfileError(f"{source}: y_context_length, z_itl and z_thpt_per_gpu must be positive")
        if not max_kv_tokens > 0:
            raise ProfileError(f"{source}: max_kv_tokens must be positive, got {max_kv_tokens}")
        if np.unique(ctx).size < 2:
            raise ProfileError(f"{source}: need at least 2 distinct y_context_length levels")
        surface = DecodeSurface.build(kv, ctx, itl_ms, thpt_per_gpu, max_kv_tokens, source=source)
        try:
            with np.errstate(all="ignore"):
                grid = DynamoDecodeGrid.build(kv, ctx, itl_ms, thpt_per_gpu, max_kv_tokens)
        except (ValueError, QhullError) as exc:  # points on a line, or too close to triangulate
            raise ProfileError(
                f"{source}: the decode points cannot be triangulated for Dynamo's grid ({str(exc).splitlines()[0]}); "
                f"{HOW_TO_PRODUCE}"
            ) from None
        if not (np.all(np.isfinite(surface.itl_ms_rows)) and np.all(np.isfinite(surface.thpt_rows))):
            raise ProfileError(f"{source}: the decode surface is not finite (values too far apart); {HOW_TO_PRODUCE}")
        return cls(surface, grid, float(max_kv_tokens))


@dataclass(frozen=True)
class Profile:
    """Prefill and decode performance models of one model on one hardware setup."""

    source: str
    prefill: PrefillProfile
    decode: DecodeProfile


_CACHE: dict[str, Profile] = {}


def load_profile(directory: str | Path) -> Profile:
    """Load (once per process) the profiling results in ``directory``."""
    if "\x00" in str(directory):  # no path holds one; os calls raise ValueError on it
        raise ProfileError(f"profile directory {str(directory)!r} contains a NUL character; {HOW_TO_PRODUCE}")
    path = Path(directory).expanduser().resolve()
    key = str(path)
    if key in _CACHE:
        return _CACHE[key]
    pre = _load_arrays(path, PREFILL_SUBDIR, "prefill_raw_data.json", PREFILL_KEYS)
    dec = _load_arrays(path, DECODE_SUBDIR, "decode_raw_data.json", DECODE_KEYS)
    prefill = PrefillProfile.from_arrays(
        pre["prefill_isl"], pre["prefill_ttft"], pre["prefill_thpt_per_gpu"], source=f"{path}/{PREFILL_SUBDIR}"
    )
    max_kv = dec["max_kv_tokens"]
    if max_kv.shape[0] != 1:
        raise ProfileError(f"{path}/{DECODE_SUBDIR}: max_kv_tokens must hold one value, got shape {max_kv.shape}")
    decode = DecodeProfile.from_arrays(
        dec["x_kv_usage"],
        dec["y_context_length"],
        dec["z_itl"],
        dec["z_thpt_per_gpu"],
        float(max_kv[0]),
        source=f"{path}/{DECODE_SUBDIR}",
    )
    profile = Profile(key, prefill, decode)
    _CACHE[key] = profile
    return profile

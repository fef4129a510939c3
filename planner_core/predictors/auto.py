"""``auto``: a two-level online ensemble of cheap candidate models, chosen by their recent
one-step out-of-sample error on the deployment's own series.

**Level 1: candidates.** Every candidate (last value, Kalman, EWMAs, moving means/median,
seasonal naive, Holt-Winters, Fourier regression, drift; all O(1) or O(small window) per
sample) forecasts every interval. When the sample arrives, each candidate's symmetric
absolute percentage error ``2|y - f| / (|y| + |f|)`` (in the original units) is scored.

**Level 1: three complete forecasters** built from the same candidate forecasts:

* ``hedge``: exponentially weighted blend of all candidates, weights
  ``exp(-eta * (L_i - min L))`` on the discounted loss ``L_i <- decay * L_i + e_i``; the last
  value starts ``prior`` ahead (so a fresh blend behaves like ``constant``);
* ``topk``: the blend of the ``top_k`` candidates with the lowest mean error over the recent
  past (exponential window of about 48 intervals), weighted by ``1 / error^2`` (the pre-Hedge
  ``auto``, without its scale factor); the last value until a candidate has ``min_history``
  scored forecasts;
* ``last``: the last value (Dynamo's ``constant``).

**Level 2: selection.** The forecast is the Hedge blend of the three, weights
``exp(-eta_t * (S_j - min S))`` on their discounted sMAPE ``S_j`` (discount
``select_decay``), uniform at first, with the standard anytime learning rate
``eta_t = sqrt(8 ln 3 / t)`` for losses in [0, 1] (sMAPE terms are in [0, 2], so it is halved),
``t`` the discounted number of scored samples. No tuned rate: it tracks whichever of the three
works on this series, with regret O(sqrt(t ln 3)) against the best of them.

Zero samples are treated as possible *data gaps* (a scrape that saw nothing, a ServeGen
window without data), not as load the candidates should learn from:

* zeros are not fed to the candidates, and do not score them;
* the forecast right after a zero is either 0 ("the gap continues") or the ensemble's forecast
  ("the load is back"), whichever has had the lower error after past zeros;
* the first non-zero sample after a run of zeros is often a partial interval. It is *held*:
  the forecast right after it is either that sample or the pre-gap forecast, whichever has had
  the lower error after past gap exits; when the next sample arrives, the held one is fed to the
  candidates only if it predicted that next sample better than the pre-gap forecast did.

All of it is a bounded, JSON-serialisable state (candidate states and a few numbers per
candidate), and a pure function of the samples seen, so a warm start from history equals the
uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from planner_core.predictors.base import Model
from planner_core.predictors.simple import (
    Drift,
    Ewma,
    FourierRegression,
    HoltWinters,
    Kalman,
    LastValue,
    LinearTrend,
    SeasonalNaive,
    WindowStat,
)

DEFAULT_DECAY = 0.95  # loss half-life about 14 intervals
DEFAULT_ETA = 3.0
DEFAULT_PRIOR = 1.0
DEFAULT_TOP_K = 3
DEFAULT_RANK_DECAY = 47.0 / 48.0  # ``topk`` ranks by the mean error over about 48 intervals
DEFAULT_MIN_HISTORY = 3  # scored forecasts before ``topk`` ranks a candidate
DEFAULT_SELECT_DECAY = 0.99  # level 2 remembers about 100 intervals
MEMBERS = ("hedge", "topk", "last")  # the level-2 forecasters
GAP_FLOOR = 1e-12  # below this the members have not disagreed yet


def _identity(y: float) -> float:
    return y


def _smape_term(actual: float, pred: float) -> float:
    pred = max(pred, 0.0)
    den = abs(actual) + abs(pred)
    return 0.0 if den == 0 else 2.0 * abs(actual - pred) / den


def _hedge_weights(losses: list[float], eta: float) -> list[float]:
    """Exponential weights ``exp(-eta (L_j - min L))``, normalised; uniform over the leaders
    when ``eta`` is infinite."""
    best = min(losses)
    if math.isinf(eta):
        w = [1.0 if lo <= best else 0.0 for lo in losses]
    else:
        w = [math.exp(-eta * (lo - best)) for lo in losses]
    tot = sum(w)
    return [wi / tot for wi in w]


def _mixability_gap(weights: list[float], losses: list[float], eta: float) -> float:
    """AdaHedge's mixability gap of one round: the weights' mean loss minus the mix loss
    ``-ln(sum w exp(-eta l)) / eta`` (the best loss among the weighted members when ``eta``
    is infinite). Non-negative; large when the weighted members disagree."""
    if not weights:
        weights = [1.0 / len(losses)] * len(losses)
    mean = sum(w * lo for w, lo in zip(weights, losses, strict=True))
    if math.isinf(eta):
        mix = min(lo for w, lo in zip(weights, losses, strict=True) if w > 0)
    else:
        lo_min = min(losses)
        mixed = sum(w * math.exp(-eta * (lo - lo_min)) for w, lo in zip(weights, losses, strict=True))
        mix = lo_min - math.log(mixed) / eta
    return max(mean - mix, 0.0)


def default_candidates(q_level: float, q_trend: float, r: float, min_points: int) -> list[Model]:
    return [
        LastValue(),
        Kalman(q_level, q_trend, r, min_points),
        Ewma(0.1),
        Ewma(0.3),
        Ewma(0.6),
        WindowStat(5, "mean"),
        WindowStat(10, "mean"),
        WindowStat(5, "median"),
        SeasonalNaive(),
        SeasonalNaive(mode="delta"),
        HoltWinters(),
        FourierRegression(),
        Drift(0.5),
        WindowStat(20, "mean"),
        Ewma(0.8),
        Drift(0.25),
        LinearTrend(20),
        LinearTrend(50),
    ]


class AutoBlend(Model):
    name = "auto"

    def __init__(
        self,
        candidates: list[Model],
        *,
        decay: float = DEFAULT_DECAY,
        eta: float = DEFAULT_ETA,
        inverse: Callable[[float], float] = _identity,
        forward: Callable[[float], float] = _identity,
        prior: float = DEFAULT_PRIOR,
        top_k: int = DEFAULT_TOP_K,
        rank_decay: float = DEFAULT_RANK_DECAY,
        min_history: int = DEFAULT_MIN_HISTORY,
        select_decay: float = DEFAULT_SELECT_DECAY,
    ) -> None:
        """``candidates[0]`` must be the last value."""
        self.candidates = candidates
        self.decay = float(decay)
        self.eta = float(eta)
        self.inverse = inverse
        self.forward = forward
        self.top_k = int(top_k)
        self.rank_decay = float(rank_decay)
        self.min_history = int(min_history)
        self.select_decay = float(select_decay)
        n = len(candidates)
        # discounted sMAPE per candidate; the first candidate (last value) starts ahead by `prior`
        self.loss: list[float] = [0.0] + [float(prior)] * (n - 1)
        self.weights: list[float] = []
        # ``topk`` ranking: discounted error sum, discounted count, number of scored forecasts
        self.rank_sum = [0.0] * n
        self.rank_w = [0.0] * n
        self.rank_n = [0] * n
        # level 2: discounted sMAPE of each member, discounted count, last weights
        self.sel_loss = [0.0] * len(MEMBERS)
        self.sel_gap = 0.0  # discounted AdaHedge mixability gap
        self.member_weights: list[float] = []
        self.pending: list[float | None] = [None] * n  # candidate forecasts (fit space)
        self.member_pending: list[float] | None = None  # member forecasts (fit space)
        self.pending_blend: float | None = None
        self.zero_run = 0  # consecutive zero samples so far
        self.held: list[float] | None = None  # [value, t] of the first sample after zeros
        # discounted sMAPE of the two options after a zero: [predict 0, predict the blend]
        self.after_zero = [0.0, 0.0]
        # ... and after a gap exit: [the held sample, the pre-gap blend]
        self.after_exit = [0.0, 0.0]

    # -- learning ----------------------------------------------------------------------------
    def update(self, y: float, t: float) -> None:
        actual = self.inverse(y)
        blend = self.inverse(self.pending_blend) if self.pending_blend is not None else None
        if self.zero_run > 0 and blend is not None:
            d = self.decay
            self.after_zero = [
                d * self.after_zero[0] + _smape_term(actual, 0.0),
                d * self.after_zero[1] + _smape_term(actual, blend),
            ]
        held = self.held
        if held is not None and blend is not None:
            d = self.decay
            self.after_exit = [
                d * self.after_exit[0] + _smape_term(actual, self.inverse(held[0])),
                d * self.after_exit[1] + _smape_term(actual, blend),
            ]
        self.pending_blend = None
        if y <= 0.0:
            self.zero_run += 1
            self.held = None  # a lone sample between zeros: dropped
            return
        if self.zero_run > 0:
            self.zero_run = 0
            self.held = [y, t]
            return
        if held is not None:
            self.held = None
            trusted = blend is None or _smape_term(actual, self.inverse(held[0])) <= _smape_term(actual, blend)
            if trusted:
                for c in self.candidates:
                    c.update(held[0], held[1])
        else:
            self._score(actual)
        for c in self.candidates:
            c.update(y, t)
        self.pending = [None] * len(self.candidates)
        self.member_pending = None

    def _score(self, actual: float) -> None:
        d, rd = self.decay, self.rank_decay
        for i, f in enumerate(self.pending):
            ok = f is not None and math.isfinite(f)
            e = _smape_term(actual, self.inverse(f)) if ok else 2.0  # type: ignore[arg-type]
            self.loss[i] = d * self.loss[i] + e
            if ok:
                self.rank_sum[i] = rd * self.rank_sum[i] + e
                self.rank_w[i] = rd * self.rank_w[i] + 1.0
                self.rank_n[i] += 1
        if self.member_pending is not None:
            sd = self.select_decay
            losses = [_smape_term(actual, self.inverse(f)) for f in self.member_pending]
            self.sel_gap = sd * self.sel_gap + _mixability_gap(self.member_weights, losses, self._select_eta())
            self.sel_loss = [sd * lo + e for lo, e in zip(self.sel_loss, losses, strict=True)]

    # -- forecasting -------------------------------------------------------------------------
    def _blend(self, fc: list[float | None]) -> float | None:
        """Level 1 ``hedge``."""
        avail = [i for i, f in enumerate(fc) if f is not None and math.isfinite(f)]
        self.weights = [0.0] * len(fc)
        if not avail:
            return None
        best = min(self.loss[i] for i in avail)
        w = {i: math.exp(-self.eta * (self.loss[i] - best)) for i in avail}
        tot = sum(w.values())
        out = 0.0
        for i, wi in w.items():
            self.weights[i] = wi / tot
            out += wi / tot * fc[i]  # type: ignore[operator]
        return out

    def _topk(self, fc: list[float | None]) -> float | None:
        """Level 1 ``topk``: the pre-Hedge ``auto`` without its scale factor."""
        ok = [i for i, f in enumerate(fc) if f is not None and math.isfinite(f)]
        ranked = [i for i in ok if self.rank_n[i] >= self.min_history]
        if not ranked:
            return fc[0] if 0 in ok else None
        score = {i: self.rank_sum[i] / self.rank_w[i] for i in ranked}
        chosen = sorted(ranked, key=lambda i: (score[i], i))[: self.top_k]
        w = [1.0 / max(score[i], 1e-6) ** 2 for i in chosen]
        tot = sum(w)
        values = [float(fc[i]) for i in chosen]  # type: ignore[arg-type]  # chosen from ``ok``: not None
        return sum(wi / tot * v for wi, v in zip(w, values, strict=True))

    def _select_eta(self) -> float:
        """AdaHedge's rate ln K / (discounted mixability gap); infinite (follow the leader)
        while the members' losses have never disagreed."""
        return math.log(len(MEMBERS)) / self.sel_gap if self.sel_gap > GAP_FLOOR else math.inf

    def _select(self, members: list[float]) -> float:
        """Level 2: AdaHedge over the members."""
        self.member_weights = _hedge_weights(self.sel_loss, self._select_eta())
        return sum(wi * f for wi, f in zip(self.member_weights, members, strict=True))

    def forecast(self, t_next: float | None) -> float | None:
        fc = [c.forecast(t_next) for c in self.candidates]
        self.pending = fc
        hedge = self._blend(fc)
        blend = None
        self.member_pending = None
        if hedge is not None:
            found = {"hedge": hedge, "topk": self._topk(fc), "last": fc[0]}
            members = [hedge if found[m] is None or not math.isfinite(found[m]) else found[m] for m in MEMBERS]  # type: ignore[arg-type]
            self.member_pending = members  # type: ignore[assignment]
            blend = self._select(members)  # type: ignore[arg-type]
        self.pending_blend = blend
        if blend is None:
            return None
        if self.zero_run > 0 and self.after_zero[0] < self.after_zero[1]:
            return 0.0
        if self.held is not None and self.after_exit[0] < self.after_exit[1]:
            return self.held[0]
        return blend

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            c.name: {"loss": lo, "weight": w}
            for c, lo, w in zip(self.candidates, self.loss, self.weights or [0.0] * len(self.candidates), strict=True)
        }
        out["members"] = {
            m: {"loss": lo, "weight": w}
            for m, lo, w in zip(MEMBERS, self.sel_loss, self.member_weights or [0.0] * len(MEMBERS), strict=True)
        }
        return out

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "names": [c.name for c in self.candidates],
            "models": [c.get_state() for c in self.candidates],
            "loss": list(self.loss),
            "weights": list(self.weights),
            "rank_sum": list(self.rank_sum),
            "rank_w": list(self.rank_w),
            "rank_n": list(self.rank_n),
            "members": list(MEMBERS),
            "sel_loss": list(self.sel_loss),
            "sel_gap": self.sel_gap,
            "member_weights": list(self.member_weights),
            "pending": self.pending,
            "member_pending": self.member_pending,
            "pending_blend": self.pending_blend,
            "zero_run": self.zero_run,
            "held": self.held,
            "after_zero": self.after_zero,
            "after_exit": self.after_exit,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["names"] != [c.name for c in self.candidates]:
            raise ValueError(
                f"auto state has candidates {state['names']}, expected {[c.name for c in self.candidates]}"
            )
        if state.get("members") != list(MEMBERS):
            raise ValueError(f"auto state has members {state.get('members')}, expected {list(MEMBERS)}")
        for c, s in zip(self.candidates, state["models"], strict=True):
            c.load_state(s)
        self.loss = [float(x) for x in state["loss"]]
        self.weights = [float(x) for x in state["weights"]]
        self.rank_sum = [float(x) for x in state["rank_sum"]]
        self.rank_w = [float(x) for x in state["rank_w"]]
        self.rank_n = [int(x) for x in state["rank_n"]]
        self.sel_loss = [float(x) for x in state["sel_loss"]]
        self.sel_gap = float(state["sel_gap"])
        self.member_weights = [float(x) for x in state["member_weights"]]
        self.pending = list(state["pending"])
        mp = state["member_pending"]
        self.member_pending = None if mp is None else [float(x) for x in mp]
        self.pending_blend = state["pending_blend"]
        self.zero_run = int(state["zero_run"])
        self.held = None if state["held"] is None else [float(x) for x in state["held"]]
        self.after_zero = [float(x) for x in state["after_zero"]]
        self.after_exit = [float(x) for x in state["after_exit"]]

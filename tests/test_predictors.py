import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from planner_core.config import make_config
from planner_core.predictors import PREDICTOR_NAMES, LoadPredictor
from planner_core.predictors import make_predictor as _make_predictor
from planner_core.records import Observation


def make_predictor(name, config, **options):
    # arima's order search runs inline here (deterministic); test_arima_background_refit
    # covers the background worker
    options.setdefault("synchronous_refit", True)
    return _make_predictor(name, config, **options)


CHEAP = ("constant", "kalman", "seasonal", "holt_winters", "auto")
STEP = 600.0


def feed(p, values, step=STEP, t0=0.0):
    for i, v in enumerate(values):
        p.observe(v, t0 + (i + 1) * step)
    return p


@pytest.fixture(scope="module")
def config():
    return make_config()


@pytest.mark.parametrize("name", PREDICTOR_NAMES)
def test_constant_series(name, config):
    p = feed(make_predictor(name, config), [42.0] * 12)
    f = p.predict()
    assert f.predictor == name and f.quantile == 0.9
    assert f.value == pytest.approx(42.0, rel=1e-3)
    assert f.upper >= f.value


def test_no_data_predicts_zero(config):
    for name in PREDICTOR_NAMES:
        p = make_predictor(name, config)
        assert not p.has_data
        assert p.predict().value == 0.0


def test_unknown_name(config):
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("oracle", config)


@pytest.mark.parametrize(("name", "rel"), [("kalman", 0.02), ("holt_winters", 0.05), ("auto", 0.02)])
def test_linear_trend(name, rel, config):
    # holt_winters damps its trend (phi 0.9), so it lags a steady ramp a little
    p = feed(make_predictor(name, config), [100.0 + 5 * i for i in range(60)])
    assert p.predict().value == pytest.approx(400.0, rel=rel)


def test_arima_linear_trend(config):
    p = feed(make_predictor("arima", config), [100.0 + 5 * i for i in range(30)])
    assert p.predict().value == pytest.approx(250.0, rel=0.02)


def test_constant_is_last_value(config):
    p = feed(make_predictor("constant", config), [3.0, 9.0, 4.0])
    assert p.predict().value == 4.0


def test_kalman_uses_last_value_before_min_points(config):
    p = feed(make_predictor("kalman", config), [10.0, 20.0, 30.0])
    assert p.predict().value == 30.0


def daily_sine(days, step=STEP, base=1000.0, amp=500.0):
    n = int(days * 86400 / step)
    t = (np.arange(n) + 1) * step
    return base + amp * np.sin(2 * np.pi * t / 86400), t


@pytest.mark.parametrize(("name", "tol"), [("seasonal", 0.02), ("holt_winters", 0.05), ("auto", 0.02)])
def test_daily_sine(name, tol, config):
    y, t = daily_sine(4)
    p = make_predictor(name, config)
    errs = []
    for v, ts in zip(y, t, strict=True):
        if ts > 3 * 86400:
            errs.append(abs(p.predict().value - v) / v)
        p.observe(float(v), float(ts))
    assert np.mean(errs) < tol


def test_seasonal_beats_constant_on_noisy_daily_cycle(config):
    y, t = daily_sine(5, step=3600.0, amp=800.0)
    rng = np.random.default_rng(0)
    y = y * (1 + 0.02 * rng.standard_normal(y.size))
    err = {}
    for name in ("constant", "seasonal"):
        p = make_predictor(name, config)
        e = []
        for v, ts in zip(y, t, strict=True):
            if ts > 2 * 86400:
                e.append(abs(p.predict().value - v))
            p.observe(float(v), float(ts))
        err[name] = np.mean(e)
    assert err["seasonal"] < 0.9 * err["constant"]


@pytest.mark.parametrize("name", CHEAP)
def test_step_change(name, config):
    p = feed(make_predictor(name, config), [100.0] * 30 + [300.0] * 30)
    assert p.predict().value == pytest.approx(300.0, rel=0.05)


@pytest.mark.parametrize("name", PREDICTOR_NAMES)
def test_leading_zeros_ignored(name, config):
    p = make_predictor(name, config)
    feed(p, [0.0] * 5)
    assert not p.has_data and p.predict().value == 0.0
    q = make_predictor(name, config)
    feed(p, [50.0] * 8, t0=5 * STEP)
    feed(q, [50.0] * 8, t0=5 * STEP)
    assert p.has_data
    assert p.predict().value == pytest.approx(q.predict().value)
    assert p.get_state()["n"] == 8


@pytest.mark.parametrize("name", (*CHEAP, "arima"))
def test_nan_is_missing_not_zero(name, config):
    vals = [100.0, 102.0, 104.0, 106.0, 108.0, 110.0, 112.0]
    with_gaps = [100.0, None, 102.0, math.nan, 104.0, 106.0, None, 108.0, 110.0, 112.0]
    a = feed(make_predictor(name, config), vals)
    b = feed(make_predictor(name, config), with_gaps)
    assert b.get_state()["n"] == len(vals)
    if name in ("constant", "kalman", "arima"):
        assert b.predict().value == pytest.approx(a.predict().value)
    assert b.predict().value > 90  # never dragged toward zero


def test_log1p_round_trip():
    cfg = make_config(load_predictor_log1p=True)
    p = feed(make_predictor("constant", cfg), [0.0, 5.0, 1234.5])
    assert p.predict().value == pytest.approx(1234.5, rel=1e-12)
    for name in CHEAP:
        q = feed(make_predictor(name, cfg), [777.0] * 10)
        assert q.predict().value == pytest.approx(777.0, rel=1e-6)
    # log space: kalman on an exponential series stays positive and near the last value
    k = feed(make_predictor("kalman", cfg), [10.0 * 1.1**i for i in range(40)])
    assert k.predict().value == pytest.approx(10.0 * 1.1**40, rel=0.1)


def noisy_series(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * STEP
    return (500 + 200 * np.sin(2 * np.pi * t / 86400) + 30 * rng.standard_normal(n)).tolist()


@pytest.mark.parametrize("name", PREDICTOR_NAMES)
def test_state_round_trip_and_bounded(name, config):
    n = 300 if name not in ("arima", "prophet") else 60
    vals = noisy_series(n)
    p = feed(make_predictor(name, config), vals[:-1])
    state = json.loads(json.dumps(p.get_state(), allow_nan=False))
    q = make_predictor(name, config)
    q.load_state(state)
    assert q.predict() == p.predict()
    p.observe(vals[-1], n * STEP)
    q.observe(vals[-1], n * STEP)
    assert q.predict() == p.predict()
    assert len(json.dumps(p.get_state())) < 60_000


def test_state_size_does_not_grow(config):
    p = make_predictor("auto", config)
    vals = noisy_series(2000)
    feed(p, vals[:500])
    size_500 = len(json.dumps(p.get_state()))
    feed(p, vals[500:], t0=500 * STEP)
    assert len(json.dumps(p.get_state())) < 1.2 * size_500


@pytest.mark.parametrize(
    "name",
    [
        "constant",
        "kalman",
        "seasonal",
        "holt_winters",
        "auto",
        pytest.param("arima", marks=pytest.mark.slow),
        "prophet",
    ],
)
def test_warm_start_from_history_equals_uninterrupted(name, config):
    n = 400 if name not in ("arima", "prophet") else 140
    vals = noisy_series(n, seed=1)
    vals[5] = None
    rows = [((i + 1) * STEP, v) for i, v in enumerate(vals)]
    live = make_predictor(name, config)
    for t, v in rows:
        live.observe(v, t)
        live.predict()
    cfg = config.model_copy(update={"load_predictor": name})
    restored = LoadPredictor.from_history(cfg, {"num_req": rows, "isl": rows, "osl": rows}, synchronous_refit=True)
    assert restored.series["num_req"].predict() == live.predict()


def test_upper_quantile_covers(config):
    rng = np.random.default_rng(2)
    vals = (1000 + 100 * rng.standard_normal(400)).tolist()
    for name in ("constant", "kalman", "auto"):
        p = make_predictor(name, config)
        hits = []
        for i, v in enumerate(vals):
            if i > 150:
                hits.append(v <= p.predict().upper)
            p.observe(v, (i + 1) * STEP)
        assert 0.75 < np.mean(hits) <= 1.0


def test_arima_refit_schedule_and_dynamo_mode(config):
    p = make_predictor("arima", config)
    assert [p.model.refit_point(n) for n in (4, 5, 9, 10, 24, 25, 49, 50, 74)] == [None, 5, 5, 10, 20, 25, 25, 50, 50]
    d = make_predictor("arima", config, refit_every=1)
    assert d.model.refit_point(37) == 37


def _obs(i, num_req, isl, osl):
    end = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=60 * (i + 1))
    return Observation(end - timedelta(seconds=60), end, num_req, None, None, isl, osl, None)


def test_load_predictor(config, tmp_path):
    cfg = config.model_copy(update={"load_predictor": "kalman"})
    lp = LoadPredictor(cfg)
    assert not lp.has_data
    for i in range(10):
        lp.observe(_obs(i, 100.0, 3000.0, None if i == 9 else 150.0))
    f = lp.predict()
    assert f.predictor == "kalman" and f.is_usable()
    assert f.num_req == pytest.approx(100.0) and f.isl == pytest.approx(3000.0) and f.osl == pytest.approx(150.0)
    assert f.num_req_upper >= f.num_req
    lp2 = LoadPredictor(cfg)
    lp2.load_state(json.loads(json.dumps(lp.get_state())))
    assert lp2.predict() == f


def test_warm_up_from_trace(config, tmp_path):
    path = tmp_path / "warm.jsonl"
    lines = [f'{{"timestamp": {i * 1000}, "input_length": 100, "output_length": 10}}' for i in range(300)]
    path.write_text("\n".join(lines) + "\n")
    lp = LoadPredictor(config.model_copy(update={"load_predictor": "constant"}))
    assert lp.warm_up_from_trace(path, 60) == 4
    f = lp.predict()
    assert f.num_req == 60 and f.isl == 100 and f.osl == 10


class _GatedPool:
    """The background worker, held shut: a search submitted to it finishes only after ``gate``
    opens. A predictor that waited for its search inside observe/predict would find it done."""

    def __init__(self) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.gate = threading.Event()
        self.inner = ThreadPoolExecutor(max_workers=1)
        self.futures: list = []

    def submit(self, fn, *args):
        def held():
            self.gate.wait(60)
            return fn(*args)

        future = self.inner.submit(held)
        self.futures.append(future)
        return future


def test_arima_background_refit(config, monkeypatch):
    from planner_core.predictors import arima

    pool = _GatedPool()
    monkeypatch.setattr(arima, "_POOL", pool)
    p = _make_predictor("arima", config)  # default: order search in the background worker
    vals = noisy_series(12, seed=3)
    for i, v in enumerate(vals):
        p.observe(v, (i + 1) * STEP)
        p.predict()
        # the 5th and 10th samples start searches but do not wait for them (no timing involved)
        assert not any(f.done() for f in pool.futures)
    assert pool.futures  # a search was started in the background
    pool.gate.set()
    p.model.wait_for_refit(timeout=120)
    assert p.model.fit_at in (5, 10) and p.model.kwds is not None
    json.dumps(p.get_state(), allow_nan=False)
    q = make_predictor("arima", config)
    q.load_state(json.loads(json.dumps(p.get_state())))
    p.observe(vals[-1], 13 * STEP)
    q.observe(vals[-1], 13 * STEP)
    p.model.wait_for_refit(timeout=120)
    assert q.model.fit_at == 10  # inline refit of the pending point after the restart
    pool.inner.shutdown(wait=True)


def test_auto_zero_gaps_do_not_poison(config):
    base = [1000.0 + (10.0 if i % 2 else -10.0) for i in range(60)]
    gappy = base[:30] + [0.0] * 5 + [8.0] + base[30:]  # a data gap, then a partial window
    p = make_predictor("auto", config)
    preds = []
    for i, v in enumerate(gappy):
        preds.append(p.predict().value)
        p.observe(v, (i + 1) * STEP)
    # during the gap and right after the partial window the forecast stays near the level (or
    # 0 inside the gap once gaps have been seen to persist); after it, back at the level
    assert preds[36] == pytest.approx(1000.0, rel=0.05)
    assert p.predict().value == pytest.approx(1000.0, rel=0.05)
    state = json.loads(json.dumps(p.get_state(), allow_nan=False))
    q = make_predictor("auto", config)
    q.load_state(state)
    assert q.predict() == p.predict()


def test_auto_follows_last_value_on_random_walk(config):
    rng = np.random.default_rng(5)
    vals = (1000 * np.exp(np.cumsum(0.05 * rng.standard_normal(600)))).tolist()
    err = {}
    for name in ("constant", "auto"):
        p = make_predictor(name, config)
        e = []
        for i, v in enumerate(vals):
            if i > 50:
                f = p.predict().value
                e.append(2 * abs(v - f) / (v + f))
            p.observe(v, (i + 1) * STEP)
        err[name] = np.mean(e)
    assert err["auto"] < 1.1 * err["constant"]  # Hedge pays a little for exploring


def test_auto_second_level_selects_by_recent_error(config):
    # i.i.d. noise around a level: the last value is the worst forecaster, so level 2 moves its
    # weight to the blends (which lean on the means); the weights start uniform
    p = make_predictor("auto", config)
    feed(p, [500.0])
    p.predict()
    start = p.model.describe()["members"]
    assert [m["weight"] for m in start.values()] == pytest.approx([1 / 3] * 3)
    rng = np.random.default_rng(7)
    vals = (1000 + 200 * rng.standard_normal(400)).tolist()
    err = {}
    for name in ("constant", "auto"):
        q = make_predictor(name, config)
        e = []
        for i, v in enumerate(vals):
            if i > 50:
                f = q.predict().value
                e.append(2 * abs(v - f) / (v + f))
            q.observe(v, (i + 1) * STEP)
        err[name] = np.mean(e)
    members = q.model.describe()["members"]
    assert sum(m["weight"] for m in members.values()) == pytest.approx(1.0)
    assert members["last"]["loss"] > max(members["hedge"]["loss"], members["topk"]["loss"])
    # AdaHedge's rate grows while the members keep the same order, so the weight leaves the
    # last value for good
    assert members["last"]["weight"] < 0.05
    assert members["last"]["weight"] < max(members["hedge"]["weight"], members["topk"]["weight"])
    assert err["auto"] < 0.85 * err["constant"]


# -- issue 15: the calibrated upper quantile and auto on trends ---------------------------------


@pytest.mark.parametrize(
    ("case", "noise"),
    [
        # (level, relative sd): Poisson-like counts, a noisier series, a level far from 1
        ("counts", (240.0, 0.065)),
        ("noisy", (1000.0, 0.2)),
        ("tokens", (5000.0, 0.1)),
    ],
)
@pytest.mark.parametrize("name", ["constant", "kalman", "auto"])
def test_upper_quantile_coverage_lands_in_range(name, case, noise, config):
    # i.i.d. Gaussian noise of known size around a level, counted from the first forecast on
    # (the cold start included): the p90 must cover 85-95 % of 300 values; before the
    # calibration the first intervals were sized for no noise (0-60 % covered there)
    level, rel = noise
    rng = np.random.default_rng(11)
    vals = level * (1 + rel * rng.standard_normal(301))
    p = make_predictor(name, config)
    hits = []
    for i, v in enumerate(vals):
        if p.has_data:
            hits.append(v <= p.predict().upper)
        p.observe(float(v), (i + 1) * 60.0)
    assert 0.85 <= np.mean(hits) <= 0.95
    # and the first ten intervals, where only the prior and a few changes are known
    assert np.mean(hits[:10]) >= 0.7


def test_upper_quantile_cold_start_is_not_zero_width(config):
    # one sample (or two equal ones) says nothing about the noise: the prior keeps p90 above it
    for vals in ([200.0], [200.0, 200.0]):
        p = feed(make_predictor("auto", config), vals, step=60.0)
        f = p.predict()
        # z90 x the pooled spread: two prior changes of 10 %, plus the observed (zero) changes
        spread = 0.1 * math.sqrt(2 / (2 + len(vals) - 1))
        assert f.upper == pytest.approx(f.value * (1 + 1.2815515655446004 * spread), rel=1e-6)


@pytest.mark.parametrize(("slope", "noise"), [(10.0, 5.0), (5.0, 10.0), (-3.0, 5.0)])
def test_auto_tracks_a_linear_trend_like_the_best_single_model(slope, noise, config):
    # an hour of one-minute intervals on a noisy ramp, averaged over seeds: auto's sMAPE at most
    # 3 % above the best of Dynamo's cheap models (constant, kalman; kalman is the trend
    # follower). Before AdaHedge at level 2 it was 20-45 % above kalman here. Its own best
    # candidate alone (a 50-point line) is still 8-12 % better: an hour is short for choosing.
    def smape(p, y):
        e = []
        for i, v in enumerate(y):
            if p.has_data:
                f = p.predict().value
                e.append(2 * abs(v - f) / (v + f))
            p.observe(float(v), (i + 1) * 60.0)
        return float(np.mean(e))

    err: dict[str, list[float]] = {}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        y = 300 + slope * np.arange(60) + noise * rng.standard_normal(60)
        for n in ("constant", "kalman", "auto"):
            err.setdefault(n, []).append(smape(make_predictor(n, config), y))
    mean = {n: float(np.mean(v)) for n, v in err.items()}
    assert mean["auto"] <= 1.03 * min(mean["constant"], mean["kalman"]), mean

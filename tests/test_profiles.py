import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import griddata, interp1d

from planner_core.config import BUNDLED_PROFILE_DIR
from planner_core.profiles import ProfileError, load_profile

RAW_PREFILL = np.load(BUNDLED_PROFILE_DIR / "selected_prefill_interpolation" / "raw_data.npz")
RAW_DECODE = np.load(BUNDLED_PROFILE_DIR / "selected_decode_interpolation" / "raw_data.npz")


@pytest.fixture(scope="module")
def profile():
    return load_profile(BUNDLED_PROFILE_DIR)


def write_profile(root: Path, prefill: dict, decode: dict) -> Path:
    (root / "selected_prefill_interpolation").mkdir(parents=True)
    (root / "selected_decode_interpolation").mkdir(parents=True)
    np.savez(root / "selected_prefill_interpolation" / "raw_data.npz", **prefill)
    np.savez(root / "selected_decode_interpolation" / "raw_data.npz", **decode)
    return root


def raw(npz):
    return {k: npz[k].copy() for k in npz.files}


def test_bundled_profile_matches_shared_copy():
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "profiles" / "dynamo_H200_TP1P_TP1D"
    if not shared.is_dir():
        pytest.skip("../shared not present")
    for sub in ("selected_prefill_interpolation", "selected_decode_interpolation"):
        assert (shared / sub / "raw_data.npz").read_bytes() == (BUNDLED_PROFILE_DIR / sub / "raw_data.npz").read_bytes()


def test_prefill_exact_at_measured_points(profile):
    for isl, ttft, thpt in zip(
        RAW_PREFILL["prefill_isl"], RAW_PREFILL["prefill_ttft"], RAW_PREFILL["prefill_thpt_per_gpu"], strict=True
    ):
        assert profile.prefill.ttft_ms(isl) == pytest.approx(ttft, rel=1e-9)
        assert profile.prefill.thpt_per_gpu(isl) == pytest.approx(thpt, rel=1e-9)


def test_prefill_matches_dynamos_cubic_spline_between_points(profile):
    isl = RAW_PREFILL["prefill_isl"]
    ttft = interp1d(isl, RAW_PREFILL["prefill_ttft"], kind="cubic")
    thpt = interp1d(isl, RAW_PREFILL["prefill_thpt_per_gpu"], kind="cubic")
    for x in (150.0, 3000.0, 3000.5, 7777.25, 16000.0):
        assert profile.prefill.dynamo.ttft_ms(x) == pytest.approx(float(ttft(x)), rel=1e-5)
        assert profile.prefill.dynamo.thpt_per_gpu(x) == pytest.approx(float(thpt(x)), rel=1e-5)


def test_prefill_clamps_below_the_profile_and_dynamos_curve_clamps_above(profile):
    assert profile.prefill.ttft_ms(1) == pytest.approx(profile.prefill.ttft_ms(100))
    # Dynamo's own curve clamps, as Dynamo does; ours extrapolates (below)
    assert profile.prefill.dynamo.ttft_ms(10**6) == pytest.approx(profile.prefill.dynamo.ttft_ms(16372))


def test_prefill_beyond_the_profile_continues_the_growth_at_its_top(profile):
    hi = float(RAW_PREFILL["prefill_isl"][-1])
    t_hi = float(RAW_PREFILL["prefill_ttft"][-1])
    # continuous at the last measured point
    assert profile.prefill.ttft_ms(hi) == pytest.approx(t_hi, rel=1e-12)
    assert profile.prefill.ttft_ms(hi + 1e-6) == pytest.approx(t_hi, rel=1e-6)
    xs = np.concatenate([np.linspace(hi, 2e5, 500), [1e6]])
    ys = np.array([profile.prefill.ttft_ms(x) for x in xs])
    assert np.all(np.diff(ys) > 0)  # increasing
    # faster than linear (attention): per-token time grows with the prompt
    per_token = ys / xs
    assert np.all(np.diff(per_token[1:]) > 0)
    # the bundled profile (H200, Llama-3.1-8B FP8): a 32k prompt about 0.9 s, 128k about 9 s
    assert profile.prefill.ttft_ms(32_000) == pytest.approx(922.4, rel=0.01)
    assert profile.prefill.ttft_ms(128_000) == pytest.approx(8868.3, rel=0.01)
    # throughput follows: tokens / TTFT scaled to the profile's value at the last point
    for x in (20_000.0, 64_000.0):
        expected = profile.prefill.thpt_per_gpu(hi) * (x / profile.prefill.ttft_ms(x)) / (hi / t_hi)
        assert profile.prefill.thpt_per_gpu(x) == pytest.approx(expected, rel=1e-12)
    assert profile.prefill.thpt_per_gpu(128_000) < profile.prefill.thpt_per_gpu(hi)


@pytest.mark.parametrize(
    ("ttft", "slope", "curvature"),
    [
        # exactly quadratic data: the fit recovers it (slope at the last point 0.01 + 2 * 1e-6 * 8000)
        (lambda x: 20 + 0.01 * x + 1e-6 * x**2, 0.026, 1e-6),
        # exactly linear data: no curvature
        (lambda x: 20 + 0.03 * x, 0.03, 0.0),
        # concave data (the last points flatten): curvature floored at 0 and refitted as a line
        (lambda x: 20 + 0.05 * x - 2e-6 * x**2, None, 0.0),
    ],
)
def test_prefill_growth_fit(ttft, slope, curvature):
    from planner_core.profiles import PrefillGrowth

    isl = np.linspace(1000.0, 8000.0, 8)
    growth = PrefillGrowth.fit(isl, ttft(isl))
    assert growth.anchor_isl == 8000.0 and growth.anchor_ttft_ms == pytest.approx(ttft(8000.0))
    assert growth.curvature_ms_per_token2 == pytest.approx(curvature, abs=1e-12)
    if slope is not None:
        assert growth.slope_ms_per_token == pytest.approx(slope, rel=1e-9)
        assert growth.ttft_ms(20_000.0) == pytest.approx(ttft(20_000.0), rel=1e-9)
    assert growth.slope_ms_per_token > 0  # so always increasing
    assert growth.ttft_ms(9000.0) > growth.ttft_ms(8000.0)


def test_prefill_growth_falls_back_to_time_per_token_when_the_top_of_the_profile_falls():
    from planner_core.profiles import PrefillGrowth

    isl = np.linspace(1000.0, 8000.0, 8)
    growth = PrefillGrowth.fit(isl, 500.0 - 0.01 * isl)
    assert growth.curvature_ms_per_token2 == 0.0
    assert growth.slope_ms_per_token == pytest.approx(420.0 / 8000.0)


def test_max_isl_within_inverts_the_ttft_curve(profile):
    for ttft in (50.0, 300.0, 500.0, 2000.0):
        isl = profile.prefill.max_isl_within(ttft)
        assert profile.prefill.ttft_ms(isl) == pytest.approx(ttft, rel=1e-4)
    assert 20_000 < profile.prefill.max_isl_within(500.0) < 21_000
    assert profile.prefill.max_isl_within(1.0) == 0.0  # even the shortest profiled prompt is slower
    # Dynamo's clamped curve: every prompt fits once the SLA is above the profile's largest TTFT
    assert profile.prefill.dynamo.max_isl_within(10_000.0) == float("inf")


def test_prefill_ttft_increases_with_isl_where_data_does(profile):
    xs = np.linspace(100, 16372, 400)
    ys = np.array([profile.prefill.ttft_ms(x) for x in xs])
    assert np.all(np.diff(RAW_PREFILL["prefill_ttft"]) > 0)
    assert np.all(np.diff(ys) > -1e-6)


def test_decode_surface_exact_at_measured_points(profile):
    surface = profile.decode.surface
    for kv, ctx, itl, thpt in zip(
        RAW_DECODE["x_kv_usage"],
        RAW_DECODE["y_context_length"],
        RAW_DECODE["z_itl"],
        RAW_DECODE["z_thpt_per_gpu"],
        strict=True,
    ):
        # the KV axis of the table contains every measured point
        assert surface.itl_ms_at_kv(kv, ctx) == pytest.approx(itl, rel=1e-9)
        assert surface.thpt_per_gpu_at_kv(kv, ctx) == pytest.approx(thpt, rel=1e-9)


def test_decode_surface_monotone_where_data_is(profile):
    surface = profile.decode.surface
    kv, ctx, itl = RAW_DECODE["x_kv_usage"], RAW_DECODE["y_context_length"], RAW_DECODE["z_itl"]
    for level in np.unique(ctx):
        order = np.argsort(kv[ctx == level])
        k, v = kv[ctx == level][order], itl[ctx == level][order]
        for i in range(len(k) - 1):
            if v[i + 1] < v[i]:
                continue  # the measurements themselves dip here
            xs = np.linspace(k[i], k[i + 1], 50)
            ys = [surface.itl_ms_at_kv(x, level) for x in xs]
            assert np.all(np.diff(ys) >= -1e-9), (level, i)


def test_dynamo_grid_is_dynamos_griddata(profile):
    grid = profile.decode.dynamo_grid
    xi, yi = np.linspace(0, 1, 100), np.linspace(0, RAW_DECODE["y_context_length"].max(), 100)
    mesh = np.meshgrid(xi, yi)
    points = (RAW_DECODE["x_kv_usage"], RAW_DECODE["y_context_length"])
    expected = griddata(points, RAW_DECODE["z_itl"], tuple(mesh), method="cubic")
    nearest = griddata(points, RAW_DECODE["z_itl"], tuple(mesh), method="nearest")
    expected[np.isnan(expected)] = nearest[np.isnan(expected)]
    np.testing.assert_allclose(grid.itl_ms_grid, expected)


def test_best_operating_point_meets_target_and_reports_unreachable(profile):
    for model in (profile.decode.surface, profile.decode.dynamo_grid):
        point = model.best_operating_point(20.0, 3075)
        assert point.meets_target and point.itl_ms <= 20.0
        tighter = model.best_operating_point(10.0, 3075)
        assert tighter.thpt_per_gpu < point.thpt_per_gpu
        impossible = model.best_operating_point(1.0, 3075)
        assert not impossible.meets_target


def test_published_numbers(profile):
    # Dynamo's README: about 40k tok/s/GPU prefill at about 80 ms TTFT for ISL 3000 ...
    assert 40_000 <= profile.prefill.thpt_per_gpu(3000) <= 52_000
    assert 50 <= profile.prefill.ttft_ms(3000) <= 90
    # ... and about 10k tok/s/GPU decode near 10 ms ITL is an upper bound at context 3075.
    assert profile.decode.surface.best_operating_point(10.0, 3075).thpt_per_gpu < 10_000


def test_missing_directory_says_how_to_produce(tmp_path):
    with pytest.raises(ProfileError, match="pre-deployment profiling"):
        load_profile(tmp_path / "absent")
    with pytest.raises(ProfileError, match=r"selected_prefill_interpolation/raw_data\.npz"):
        load_profile(tmp_path)


def test_missing_key(tmp_path):
    pre = raw(RAW_PREFILL)
    del pre["prefill_ttft"]
    write_profile(tmp_path, pre, raw(RAW_DECODE))
    with pytest.raises(ProfileError, match="missing key\\(s\\) prefill_ttft"):
        load_profile(tmp_path)


def test_nan_values(tmp_path):
    dec = raw(RAW_DECODE)
    dec["z_itl"][3] = np.nan
    write_profile(tmp_path, raw(RAW_PREFILL), dec)
    with pytest.raises(ProfileError, match="z_itl contains NaN"):
        load_profile(tmp_path)


def test_non_monotone_isl(tmp_path):
    pre = raw(RAW_PREFILL)
    pre["prefill_isl"][[2, 3]] = pre["prefill_isl"][[3, 2]]
    write_profile(tmp_path, pre, raw(RAW_DECODE))
    with pytest.raises(ProfileError, match="strictly increasing"):
        load_profile(tmp_path)


def test_wrong_shapes(tmp_path):
    pre = raw(RAW_PREFILL)
    pre["prefill_ttft"] = pre["prefill_ttft"][:-1]
    write_profile(tmp_path / "a", pre, raw(RAW_DECODE))
    with pytest.raises(ProfileError, match="same length"):
        load_profile(tmp_path / "a")
    dec = raw(RAW_DECODE)
    dec["z_thpt_per_gpu"] = dec["z_thpt_per_gpu"].reshape(1, -1)
    write_profile(tmp_path / "b", raw(RAW_PREFILL), dec)
    with pytest.raises(ProfileError, match="1-D array"):
        load_profile(tmp_path / "b")


def test_corrupt_file(tmp_path):
    shutil.copytree(BUNDLED_PROFILE_DIR, tmp_path / "p")
    (tmp_path / "p" / "selected_decode_interpolation" / "raw_data.npz").write_bytes(b"not a zip")
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(tmp_path / "p")


def test_json_layout_loads_the_same(tmp_path, profile):
    (tmp_path / "prefill_raw_data.json").write_text(json.dumps({k: RAW_PREFILL[k].tolist() for k in RAW_PREFILL.files}))
    (tmp_path / "decode_raw_data.json").write_text(json.dumps({k: RAW_DECODE[k].tolist() for k in RAW_DECODE.files}))
    again = load_profile(tmp_path)
    assert again.prefill.thpt_per_gpu(3000) == pytest.approx(profile.prefill.thpt_per_gpu(3000))
    assert again.decode.surface.best_operating_point(50, 3075) == profile.decode.surface.best_operating_point(50, 3075)

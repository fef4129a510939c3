import math

import numpy as np
import pytest

from planner_core.traces import (
    TraceError,
    bin_rate_curve,
    bin_trace,
    detect_format,
    read_binned,
    read_rate_curve,
    read_trace,
    requests_from_rate_curve,
)

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:17:03.9799600,4808,10
2023-11-16 18:17:04.0319600,3180,8
2023-11-16 18:18:05.5000000,100,20
2023-11-16 18:19:10.0000000,200,40"""

MOONCAKE = """{"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [0]}
{"timestamp": 30000, "input_length": 300, "output_length": 30}
{"timestamp": 61000, "input_length": 50, "output_length": 5, "extra": "x"}
{"timestamp": 125000, "input_length": 70, "output_length": 7}
"""

SERVEGEN = (
    (
        "window_start_s,window_s,total_rate_rps,active_clients,"
        "mean_input_tokens_est,mean_output_tokens_est,length_coverage_rate_share\n"
    )
    + """0,600,1.0,2,100.0,10.0,1.0
600,600,2.0,2,200.0,20.0,1.0
1200,600,0,0,,,0
1800,600,0.5,1,400.0,40.0,1.0
"""
)


@pytest.fixture
def write(tmp_path):
    def _write(name, text):
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write


def test_azure_reader(write):
    p = write("a.csv", AZURE)
    assert detect_format(p) == "azure"
    t = read_trace(p)
    assert t.format == "azure" and len(t) == 4
    assert t.arrival_s[0] == 0.0
    assert t.arrival_s[1] == pytest.approx(0.052, abs=1e-6)
    assert list(t.isl) == [4808, 3180, 100, 200] and list(t.osl) == [10, 8, 20, 40]
    assert t.origin_s > 1.7e9


def test_mooncake_reader_and_binning(write):
    p = write("m.jsonl", MOONCAKE)
    assert detect_format(p) == "mooncake"
    t = read_trace(p)
    assert list(t.arrival_s) == [0.0, 30.0, 61.0, 125.0]
    b = bin_trace(t, 60)
    assert list(b.num_req) == [2, 1]  # the partial third interval is dropped
    assert b.isl[0] == 200 and b.osl[1] == 5
    b2 = bin_trace(t, 60, drop_partial=False)
    assert list(b2.num_req) == [2, 1, 1]


def test_empty_intervals_have_nan_lengths(write):
    p = write(
        "m.jsonl",
        '{"timestamp": 0, "input_length": 1, "output_length": 1}\n'
        '{"timestamp": 200000, "input_length": 3, "output_length": 3}\n',
    )
    b = bin_trace(read_trace(p), 60)
    assert list(b.num_req) == [1, 0, 0]
    assert math.isnan(b.isl[1]) and math.isnan(b.osl[2])


def test_servegen_rate_curve(write):
    p = write("s.csv", SERVEGEN)
    assert detect_format(p) == "servegen_aggregate"
    c = read_rate_curve(p)
    assert len(c) == 4 and math.isnan(c.mean_isl[2])
    b = bin_rate_curve(c, 600)
    assert list(b.num_req) == [600, 1200, 0, 300]
    assert math.isnan(b.isl[2])
    b2 = bin_rate_curve(c, 1200)
    assert list(b2.num_req) == [1800, 300]
    assert b2.isl[0] == pytest.approx((600 * 100 + 1200 * 200) / 1800)
    with pytest.raises(TraceError, match="multiple"):
        bin_rate_curve(c, 900)
    assert len(read_binned(p, 600)) == 4
    with pytest.raises(TraceError, match="read_rate_curve"):
        read_trace(p)


def test_requests_from_rate_curve(write):
    c = read_rate_curve(write("s.csv", SERVEGEN))
    lengths = read_trace(write("m.jsonl", MOONCAKE))
    a = requests_from_rate_curve(c, lengths, seed=3)
    b = requests_from_rate_curve(c, lengths, seed=3)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.isl, b.isl)
    assert abs(len(a) - 2100) < 200
    assert np.all(np.diff(a.arrival_s) >= 0)
    assert set(a.isl.tolist()) <= {100, 300, 50, 70}
    part = requests_from_rate_curve(c, lengths, seed=1, start_s=600, end_s=1200)
    assert part.origin_s == 600 and part.arrival_s.max() < 600
    assert abs(len(part) - 1200) < 150


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.csv", AZURE.replace("3180", "x"), "line 3: ContextTokens"),
        ("a.csv", AZURE.replace("2023-11-16 18:18:05.5000000", "yesterday"), "line 4: TIMESTAMP"),
        ("a.csv", AZURE + "\n2023-11-16 18:20:00.0,1", "line 6: expected 3 columns"),
        ("m.jsonl", MOONCAKE + "{not json}\n", "line 5: expected one JSON object"),
        ("m.jsonl", MOONCAKE.replace('"input_length": 300, ', ""), "line 2: missing key 'input_length'"),
        ("m.jsonl", MOONCAKE.replace('"output_length": 7', '"output_length": -7'), "line 4: output_length"),
        ("s.csv", SERVEGEN.replace("2.0,2", "fast,2"), "line 3: total_rate_rps"),
        ("s.csv", SERVEGEN.replace("1800,600", "600,600"), "line 5: window_start_s"),
        ("x.txt", "hello,world\n1,2\n", "line 1: unrecognised"),
        ("e.csv", "", "empty"),
    ],
)
def test_broken_files(write, name, text, match):
    p = write(name, text)
    with pytest.raises(TraceError, match=match) as exc:
        read_binned(p, 600)
    assert str(p) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        read_trace(tmp_path / "nope.csv")


def test_rate_curve_scaled_and_lengths_matched_per_window(write):
    c = read_rate_curve(write("s.csv", SERVEGEN))
    lengths = read_trace(write("m.jsonl", MOONCAKE))  # ISL mean 130, OSL mean 13
    base = requests_from_rate_curve(c, lengths, seed=5)
    scaled = requests_from_rate_curve(c, lengths, seed=5, rate_scale=4.0, match_mean_lengths=True)
    assert abs(len(scaled) - 4 * 2100) < 400 and abs(len(base) - 2100) < 200
    window = np.floor(scaled.arrival_s / 600).astype(int)
    for w, (isl, osl) in {0: (100, 10), 1: (200, 20), 3: (400, 40)}.items():
        assert scaled.isl[window == w].mean() == pytest.approx(isl, rel=0.08)
        assert scaled.osl[window == w].mean() == pytest.approx(osl, rel=0.08)
    assert scaled.isl.dtype.kind == "i" and scaled.osl.min() >= 1
    with pytest.raises(ValueError, match="rate_scale"):
        requests_from_rate_curve(c, lengths, seed=5, rate_scale=0)

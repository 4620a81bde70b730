"""Sentences computed from numbers: each says what the numbers given here say, nothing else."""

from __future__ import annotations

import pandas as pd

from helpers.analysis import findings


def test_a_client_p95_gap_is_claimed_only_beyond_what_the_client_adds():
    table = pd.DataFrame(
        {"client_p95_ms": [2.8, 1.6, 9.0], "server_p95_ms": [0.5, 0.9, 8.0]},
        index=["go-api-onnx", "python-api-onnx", "python-api-pkl"],
    )
    said = findings.client_latency(table)
    # go's client figure is 2.3 ms above its server's: 1.2 ms between go and onnx says nothing.
    assert "python-api-onnx and go-api-onnx cannot be told apart" in said
    assert "go-api-onnx is faster than python-api-pkl as the client sees it" in said


def test_capacity_sentence_keeps_bounds_as_bounds():
    from helpers.load.capacity import ServiceCapacity

    said = findings.capacity(
        [
            ServiceCapacity("python-api-pkl", 200, "service"),
            ServiceCapacity("go-api-onnx", 3200, "generator"),
        ]
    )
    assert "go-api-onnx ≥ 3200 (generator-bound) req/s" in said
    assert "go-api-onnx / python-api-pkl = ≥ 16.0×" in said


def test_ladder_sentence_says_within_or_beyond_the_limit():
    frame = pd.DataFrame(
        {
            "service": ["a"] * 4 + ["b"] * 4,
            "rung": ["framework", "+ parsing", "+ model", "+ telemetry"] * 2,
            "cpu_us_per_request": [50, 60, 70, 74, 50, 60, 600, 650],
        }
    )
    said = findings.ladder(frame)
    assert "a: framework 50 µs, + parsing +10, + model +10, + telemetry +4" in said
    assert "1.48× (within 1.5×)" in said and "13.00× (BEYOND 1.5×)" in said


def test_spread_beyond_fifteen_percent_is_named():
    assert "Every headline figure" in findings.unstable({"x": 0.2})
    said = findings.unstable({"x": 0.2, "y": 0.5})
    assert "y (±25%)" in said and "x" not in said.split(":")[1]

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

"""Single-row latency of the model itself: sklearn `predict_proba` vs onnxruntime `run`.

This is the floor under every service's latency: one request = one row. The two runtimes
are called alternately in the same loop (and the order flips every iteration), so a burst
of noise from a neighbour on a shared machine hits both, not one. Each gets its native
input, prepared outside the timed call: a float64 row for sklearn, the graph's input type for
ONNX (float32 for the seed's model; float64 for a graph with a double input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.pipeline import Pipeline

from helpers.model import convert, parity, train
from helpers.model import manifest as manifest_io

SKLEARN, ONNXRUNTIME = "sklearn predict_proba", "onnxruntime run"


@dataclass(frozen=True)
class LatencySamples:
    """Per-call latencies in microseconds, long format: columns runtime, latency_us."""

    samples: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        grouped = self.samples.groupby("runtime", sort=False)["latency_us"]
        return pd.DataFrame(
            {
                "calls": grouped.size(),
                "median_us": grouped.median(),
                "p99_us": grouped.quantile(0.99),
            }
        )

    @property
    def median_ratio(self) -> float:
        """How many times slower sklearn's median single-row call is than onnxruntime's."""
        medians = self.summary()["median_us"]
        return float(medians[SKLEARN] / medians[ONNXRUNTIME])


def single_row_latency(
    model: Pipeline,
    session: ort.InferenceSession,
    row: np.ndarray,
    iterations: int = 2000,
    warmup: int = 100,
) -> LatencySamples:
    """Time `iterations` interleaved single-row calls of each runtime after `warmup` calls."""
    if iterations < 1 or warmup < 0:
        raise ValueError(f"need iterations ≥ 1 and warmup ≥ 0, got {iterations}, {warmup}")
    row64 = np.asarray(row, dtype=np.float64).reshape(1, -1)
    feed = {session.get_inputs()[0].name: row64.astype(parity.input_dtype(session))}
    calls = {
        SKLEARN: lambda: model.predict_proba(row64),
        ONNXRUNTIME: lambda: session.run(None, feed),
    }
    for call in calls.values():
        for _ in range(warmup):
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for _ in range(iterations):
        for name in order:
            start = time.perf_counter_ns()
            calls[name]()
            timings[name].append((time.perf_counter_ns() - start) / 1000)
        order.reverse()  # neither runtime always runs first (warm caches, clock ramps)
    samples = pd.DataFrame(
        [(name, value) for name, values in timings.items() for value in values],
        columns=["runtime", "latency_us"],
    )
    return LatencySamples(samples)


def measure(artifacts_dir: Path, iterations: int = 2000, warmup: int = 100) -> LatencySamples:
    """Benchmark the verified pickle against the serving ONNX file on the first test row."""
    manifest = manifest_io.load(artifacts_dir / manifest_io.MANIFEST_NAME)
    graph = manifest_io.read_verified(
        artifacts_dir / manifest_io.MANIFEST_NAME, artifacts_dir / "model.onnx"
    )  # the very bytes that matched, not the path opened again
    split = manifest["training"]
    row = train.load_split(split["test_size"], split["seed"], split.get("stratify", True)).X_test[0]
    session = convert.load_session(graph)
    return single_row_latency(train.load_model(artifacts_dir), session, row, iterations, warmup)


def plot(result: LatencySamples) -> plt.Figure:
    """Median and p99 side by side, and the whole latency distribution per runtime."""
    summary = result.summary()
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(2)
    for offset, runtime in zip((-0.2, 0.2), summary.index, strict=True):
        values = summary.loc[runtime, ["median_us", "p99_us"]].to_numpy(dtype=float)
        drawn = bars.bar(x + offset, values, width=0.4, label=runtime)
        bars.bar_label(drawn, fmt="%.0f", fontsize=8)
    bars.set_xticks(x, ["median", "p99"])
    bars.set_ylabel("latency per call (µs)")
    bars.set_title(f"Single-row latency (sklearn / ONNX median = {result.median_ratio:.1f}×)")
    bars.legend()
    for runtime, group in result.samples.groupby("runtime", sort=False):
        values = np.sort(group["latency_us"].to_numpy())
        curve.plot(np.linspace(0, 100, len(values)), values, label=runtime)
    curve.set_yscale("log")
    curve.set_xlabel("percentile of calls (%)")
    curve.set_ylabel("latency per call (µs, log scale)")
    curve.set_title(f"Latency distribution ({len(values)} interleaved calls each)")
    curve.legend()
    fig.tight_layout()
    return fig

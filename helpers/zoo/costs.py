"""What a model costs before it serves a request: file size, load time, memory after load,
and single-row latency — pickle + scikit-learn against ONNX + ONNX Runtime.

Memory is measured where the services pay it: a fresh process per runtime, started with the
service's own interpreter (.venvs/python-api-pkl, .venvs/python-api-onnx — pandas is not
installed there, as in the images), imports its runtime, loads the model and runs one
all-missing row (the services' warm-up). This process reads the child's resident set with
psutil before and after the load, so the child needs nothing beyond the service's packages.
Load time is timed twice: cold in that child (the runtime's first load, including the imports
unpickling triggers) and warm in this process (median of repeated loads from memory).

Every load here hashes and loads the same bytes, as the services do: the file is read once,
its sha256 checked against the manifest, and those bytes are unpickled or handed to ONNX
Runtime — never the path opened a second time, which would load a file swapped in between.
The read and the hash are timed apart from the load, so "load" stays the runtime's cost.
"""

from __future__ import annotations

import json
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from helpers import paths
from helpers.model import convert, microbench, train
from helpers.model import manifest as manifest_io

RUNTIMES = {"pickle": "python-api-pkl", "onnx": "python-api-onnx"}
FILES = {"pickle": "model.pkl", "onnx": "model.onnx"}
PROBE_TIMEOUT_S = 120.0
MIB = 1024 * 1024

# The child: import the runtime, say so, wait; read + hash, load + one prediction, say so,
# wait; exit. Each "say" is one JSON line; each wait lets the parent read the child's memory
# undisturbed. Bytes whose sha256 is not the manifest's are never loaded: exit status 2.
PROBE = r"""
import hashlib, importlib.util, json, sys, time
runtime, path, n_features, expected = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pandas_importable = importlib.util.find_spec("pandas") is not None
import numpy as np
if runtime == "pickle":
    import pickle, sklearn
    version = sklearn.__version__
else:
    import onnxruntime as ort
    version = ort.__version__
def say(**fields):
    print(json.dumps(fields), flush=True)
    sys.stdin.readline()
say(stage="imported", pandas_importable=pandas_importable, version=version)
row = np.full((1, n_features), np.nan)
start = time.perf_counter()
with open(path, "rb") as handle:
    data = handle.read()
digest = hashlib.sha256(data).hexdigest()
read_s = time.perf_counter() - start
if digest != expected:
    print(f"{path} has sha256 {digest}, the manifest expects {expected}: not loaded",
          file=sys.stderr, flush=True)
    sys.exit(2)
start = time.perf_counter()
if runtime == "pickle":
    model = pickle.loads(data)
    elapsed = time.perf_counter() - start
    model.predict_proba(row)
else:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    elapsed = time.perf_counter() - start
    dtype = np.float64 if session.get_inputs()[0].type == "tensor(double)" else np.float32
    session.run(None, {session.get_inputs()[0].name: row.astype(dtype)})
say(stage="loaded", load_s=elapsed, read_and_hash_s=read_s)
"""


class ProbeFailed(RuntimeError):
    """The memory probe's child process did not report as expected; the message has its stderr."""


def _read_stage(child: subprocess.Popen, stage: str) -> dict[str, Any]:
    line = child.stdout.readline()
    if not line:
        child.kill()
        raise ProbeFailed(f"probe exited before '{stage}': {child.stderr.read()[-2000:]}")
    report = json.loads(line)
    if report.get("stage") != stage:
        raise ProbeFailed(f"probe said {report!r}, expected stage {stage!r}")
    return report


def memory_after_load(model_dir: Path, runtime: str, python: Path | None = None) -> dict:
    """RSS and USS (bytes) of a fresh process with `runtime` imported, then with the model
    loaded and one row predicted; the cold load time (and apart from it, the time to read and
    hash the file); whether pandas was importable there. The child checks the sha256 of the
    very bytes it loads: a changed file is refused there (ProbeFailed), never loaded."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {sorted(RUNTIMES)}, got {runtime!r}")
    model_path = Path(model_dir) / FILES[runtime]
    manifest_path = Path(model_dir) / manifest_io.MANIFEST_NAME
    recorded = manifest_io.load(manifest_path)
    entry = recorded.get("artifacts", {}).get(model_path.name)
    if entry is None:
        raise manifest_io.ArtifactMismatch(f"{model_path.name} is not listed in {manifest_path}")
    n_features = len(recorded["feature_names"])
    python = Path(python) if python else paths.service_python(RUNTIMES[runtime])
    if not python.exists():
        raise FileNotFoundError(f"{python} does not exist: run `make setup` (service envs)")
    command = [str(python), "-c", PROBE, runtime, str(model_path), str(n_features)]
    command.append(entry["sha256"])
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            process = psutil.Process(child.pid)
            imported = _read_stage(child, "imported")
            before = process.memory_full_info()
            child.stdin.write("\n")
            child.stdin.flush()
            loaded = _read_stage(child, "loaded")
            after = process.memory_full_info()
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(timeout=PROBE_TIMEOUT_S)
        finally:
            if child.poll() is None:
                child.kill()
    return {
        "runtime": runtime,
        "interpreter": str(python),
        "runtime_version": imported["version"],
        "pandas_importable": imported["pandas_importable"],
        "rss_imported_bytes": before.rss,
        "rss_loaded_bytes": after.rss,
        "uss_loaded_bytes": after.uss,
        "cold_load_ms": loaded["load_s"] * 1000,
        "read_and_hash_ms": loaded["read_and_hash_s"] * 1000,
    }


def _verified(model_dir: Path, runtime: str) -> bytes:
    """The model file of `runtime`, read once and checked against the manifest as read."""
    folder = Path(model_dir)
    return manifest_io.read_verified(folder / manifest_io.MANIFEST_NAME, folder / FILES[runtime])


LOADERS = {"pickle": pickle.loads, "onnx": convert.load_session}


def warm_load_ms(
    model_dir: Path, repeats: int = 10, runtimes: tuple[str, ...] = ("pickle", "onnx")
) -> dict[str, float]:
    """Median wall time of `pickle.loads` and of `InferenceSession` on the verified bytes
    already in memory (the file read is not the runtime's cost), after one untimed load."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    medians = {}
    for runtime in runtimes:
        data, load = _verified(model_dir, runtime), LOADERS[runtime]
        load(data)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            load(data)
            times.append((time.perf_counter() - start) * 1000)
        medians[runtime] = statistics.median(times)
    return medians


def latency(model_dir: Path, iterations: int, warmup: int = 50) -> microbench.LatencySamples:
    """microbench's interleaved single-row latency on the first test row, for this model."""
    manifest_path = Path(model_dir) / manifest_io.MANIFEST_NAME
    recorded = manifest_io.load(manifest_path)
    split = recorded["training"]
    row = train.load_split(split["test_size"], split["seed"], split.get("stratify", True)).X_test[0]
    session = convert.load_session(_verified(model_dir, "onnx"))
    model = pickle.loads(_verified(model_dir, "pickle"))
    return microbench.single_row_latency(model, session, row, iterations, warmup)


def measure(name: str, model_dir: Path, iterations: int, load_repeats: int = 10) -> dict[str, Any]:
    """All costs of one model with both files; `None` for the ONNX side if it has none."""
    recorded = manifest_io.load(Path(model_dir) / manifest_io.MANIFEST_NAME)["artifacts"]
    has_onnx = FILES["onnx"] in recorded
    record: dict[str, Any] = {
        "model": name,
        "pickle_bytes": recorded[FILES["pickle"]]["bytes"],
        "onnx_bytes": recorded[FILES["onnx"]]["bytes"] if has_onnx else None,
    }
    memory = {rt: memory_after_load(model_dir, rt) for rt in RUNTIMES if rt == "pickle" or has_onnx}
    record["memory"] = memory
    if has_onnx:
        record["warm_load_ms"] = warm_load_ms(model_dir, load_repeats)
        summary = latency(model_dir, iterations).summary()
        record["latency_us"] = {
            runtime: {k: float(v) for k, v in row.items()} for runtime, row in summary.iterrows()
        }
    else:
        record["warm_load_ms"] = warm_load_ms(model_dir, load_repeats, ("pickle",))
        record["latency_us"] = {}
    return record


def table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model: sizes (KiB), load times (ms), memory after load (MiB), latency (µs)."""
    rows = []
    for r in records:
        lat = r["latency_us"]
        mem = r["memory"]
        rows.append(
            {
                "model": r["model"],
                "pickle_KiB": r["pickle_bytes"] / 1024,
                "onnx_KiB": _div(r["onnx_bytes"], 1024),
                "pickle_cold_load_ms": mem["pickle"]["cold_load_ms"],
                "onnx_cold_load_ms": mem["onnx"]["cold_load_ms"] if "onnx" in mem else None,
                "pickle_warm_load_ms": r["warm_load_ms"].get("pickle"),
                "onnx_warm_load_ms": r["warm_load_ms"].get("onnx"),
                "pickle_rss_MiB": mem["pickle"]["rss_loaded_bytes"] / MIB,
                "onnx_rss_MiB": _div(mem.get("onnx", {}).get("rss_loaded_bytes"), MIB),
                "pickle_model_MiB": _loaded_minus_imported(mem.get("pickle")),
                "onnx_model_MiB": _loaded_minus_imported(mem.get("onnx")),
                "sklearn_median_us": lat.get(microbench.SKLEARN, {}).get("median_us"),
                "sklearn_p99_us": lat.get(microbench.SKLEARN, {}).get("p99_us"),
                "onnx_median_us": lat.get(microbench.ONNXRUNTIME, {}).get("median_us"),
                "onnx_p99_us": lat.get(microbench.ONNXRUNTIME, {}).get("p99_us"),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def _div(value: float | None, by: float) -> float | None:
    return None if value is None else value / by


def _loaded_minus_imported(memory: dict | None) -> float | None:
    if not memory:
        return None
    return (memory["rss_loaded_bytes"] - memory["rss_imported_bytes"]) / MIB


def pandas_absent(records: list[dict[str, Any]]) -> bool:
    """True if no probe could import pandas: the numbers are the services' environments'."""
    return not any(m["pandas_importable"] for r in records for m in r["memory"].values())


def cost_findings(costs: pd.DataFrame) -> list[str]:
    """One sentence per measured cost, from the numbers (largest / smallest, ratios)."""
    sentences = []
    both = costs.dropna(subset=["onnx_KiB"])
    if len(both):
        ratio = both["pickle_KiB"] / both["onnx_KiB"]
        sentences.append(
            f"The pickle is {ratio.min():.2g}–{ratio.max():.2g}× the size of the ONNX file "
            f"of the same model; the largest ONNX file is {both['onnx_KiB'].idxmax()}'s "
            f"({both['onnx_KiB'].max():.0f} KiB), the largest pickle "
            f"{costs['pickle_KiB'].idxmax()}'s ({costs['pickle_KiB'].max():.0f} KiB)."
        )
        rss = both["pickle_rss_MiB"] - both["onnx_rss_MiB"]
        sentences.append(
            f"After loading, the pickle process is {rss.min():.0f}–{rss.max():.0f} MiB larger "
            f"than the ONNX Runtime process for the same model "
            f"({both['pickle_rss_MiB'].min():.0f}–{both['pickle_rss_MiB'].max():.0f} MiB vs "
            f"{both['onnx_rss_MiB'].min():.0f}–{both['onnx_rss_MiB'].max():.0f} MiB)."
        )
        lat = both.dropna(subset=["sklearn_median_us", "onnx_median_us"])
        if len(lat):
            speedup = lat["sklearn_median_us"] / lat["onnx_median_us"]
            sentences.append(
                f"Single-row median latency: ONNX Runtime is {speedup.min():.1f}× "
                f"({speedup.idxmin()}) to {speedup.max():.1f}× ({speedup.idxmax()}) faster than "
                f"scikit-learn; the slowest ONNX model is {lat['onnx_median_us'].idxmax()} "
                f"({lat['onnx_median_us'].max():.0f} µs median, "
                f"{lat.loc[lat['onnx_median_us'].idxmax(), 'onnx_p99_us']:.0f} µs p99)."
            )
    return sentences


if __name__ == "__main__":  # python -m helpers.zoo.costs MODEL_DIR
    print(json.dumps(measure(Path(sys.argv[1]).name, Path(sys.argv[1]), 200), indent=2))


def plot(costs: pd.DataFrame) -> Any:
    """Four panels, pickle vs ONNX per model: file size, memory after load, cold load time,
    single-row median latency (all log scale: the models differ by orders of magnitude)."""
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [
        ("pickle_KiB", "onnx_KiB", "file size (KiB)", "File size"),
        ("pickle_rss_MiB", "onnx_rss_MiB", "RSS after load (MiB)", "Process memory after load"),
        ("pickle_cold_load_ms", "onnx_cold_load_ms", "first load (ms)", "Cold load time"),
        ("sklearn_median_us", "onnx_median_us", "median per call (µs)", "Single-row latency"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    x = np.arange(len(costs))
    for ax, (left, right, unit, title) in zip(axes.flat, panels, strict=True):
        ax.bar(x - 0.2, costs[left].astype(float), width=0.4, label="pickle / scikit-learn")
        ax.bar(x + 0.2, costs[right].astype(float), width=0.4, label="ONNX / ONNX Runtime")
        ax.set_yscale("log")
        ax.set_xticks(x, costs.index, rotation=20, fontsize=8)
        ax.set_xlabel("model")
        ax.set_ylabel(f"{unit}, log scale")
        ax.set_title(title)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig

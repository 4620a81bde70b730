"""Which model file is safe to load: pickle vs skops vs ONNX, demonstrated harmlessly.

Every demonstration here does one thing when it "runs code": it writes a marker file into a
temporary folder the caller chooses. Nothing else is executed, read or sent.

- pickle: unpickling calls whatever the file names (`__reduce__`), so a model file is code.
  `malicious_pickle` writes one whose unpickling writes the marker; `unpickle_in_child`
  shows that it does; `run_refusal` starts a real service command line (given by the caller:
  this module knows nothing of serving) on it and reports its exit status and whether the
  marker appeared — the services' sha256 check must refuse it *before* unpickling.
- skops: `skops.io.load` builds only types on its trusted list and refuses the rest
  (`get_untrusted_types` lists them before loading). Defence in depth, not a guarantee: its
  published advisories include trusted-type bypasses (CVE-2025-54412, CVE-2025-54413, fixed
  in 0.12) and Card.get_model's silent joblib fallback (CVE-2025-54886, fixed in 0.13).
- ONNX: a graph of operators the runtime implements; no code from the file runs. Its caveat
  is external data (tensors stored in files beside the model): a path that leaves the
  model's folder must be refused (onnx's advisories: CVE-2022-25882 directory traversal,
  CVE-2024-5187 in the hub's tar extraction, CVE-2026-27489 via symlinks).
  `external_data_escape` writes a graph whose weights point at `../outside.bin` and reports
  what onnx and ONNX Runtime do with it.
"""

from __future__ import annotations

import pathlib
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import skops.io as sio
from onnx import TensorProto, helper

from helpers.model import convert
from helpers.model import manifest as manifest_io

MARKER_TEXT = "written while loading a model file: code from the file ran\n"
ONNX_IR_VERSION = 10  # what skl2onnx 1.20 writes; ONNX Runtime 1.31 reads up to 13


class MarkerOnUnpickle:
    """Unpickling this writes `marker` (pathlib's own write_text is the callable named)."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self) -> tuple:
        return (pathlib.Path.write_text, (self.marker, MARKER_TEXT))


class MarkerOnSkopsLoad:
    """A skops file of this type writes `marker` when loaded (in __setstate__) — if trusted."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __getstate__(self) -> dict[str, Any]:
        return {"marker": self.marker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text(MARKER_TEXT)
        self.marker = state["marker"]


def malicious_pickle(path: Path, marker: Path) -> Path:
    """A pickle file whose unpickling writes `marker`; its sha256 is not the manifest's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(MarkerOnUnpickle(marker), protocol=pickle.HIGHEST_PROTOCOL))
    return path


def unpickle_in_child(path: Path, marker: Path, python: str = sys.executable) -> dict:
    """pickle.load in a fresh process with no check first: does the marker appear?"""
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    done = subprocess.run(
        [python, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    return {"exit_status": done.returncode, "marker_written": Path(marker).exists()}


@dataclass(frozen=True)
class Refusal:
    exit_status: int | None
    stderr: str
    marker_written: bool

    @property
    def refused_before_unpickling(self) -> bool:
        # exit 2 for another reason (a bad setting, say) would not show the hash check
        return self.exit_status == 2 and "sha256" in self.stderr and not self.marker_written


def run_refusal(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, marker: Path, timeout_s: float = 60
) -> Refusal:
    """Run a service's command line (MODEL_PATH = the malicious pickle in `env`); it must exit
    on its own. Returns its exit status, its stderr and whether the marker was written."""
    try:
        done = subprocess.run(
            list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout_s
        )
        status, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as expired:  # it served the file: the worst outcome
        status, stderr = None, f"still running after {timeout_s:g} s: {expired.stderr or ''}"
    return Refusal(status, stderr.strip()[-2000:], Path(marker).exists())


def skops_refusal(folder: Path) -> dict[str, Any]:
    """A skops file whose loading would write a marker: listed as untrusted, refused by
    `skops.io.load`, and — only when the caller trusts the type — loaded, marker written."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "skops-marker.txt"
    path = folder / "marker.skops"
    sio.dump(MarkerOnSkopsLoad(marker), path)
    untrusted = sio.get_untrusted_types(file=path)
    try:
        sio.load(path)
        refused, error = False, ""
    except Exception as exc:  # UntrustedTypesFoundException (a subclass of TypeError)
        refused, error = True, f"{type(exc).__name__}: {exc}"
    marker_after_refusal = marker.exists()
    sio.load(path, trusted=untrusted)  # the reader's decision: now the type's code runs
    return {
        "untrusted_types": untrusted,
        "refused": refused,
        "error": error,
        "marker_after_refusal": marker_after_refusal,
        "marker_after_trusting": marker.exists(),
    }


def skops_on_pickle(path: Path, marker: Path) -> dict[str, Any]:
    """skops.io.load on the malicious pickle: it is not a skops file, so nothing is unpickled."""
    try:
        sio.load(path)
        error = ""
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"error": error, "marker_written": Path(marker).exists()}


def external_data_escape(folder: Path) -> dict[str, str]:
    """A graph whose weight tensor is 'external data' at ../outside.bin (a file outside the
    model's folder, written here with harmless bytes). What onnx.load and ONNX Runtime do
    with it — from a path (a loader that opens the file by name) and from bytes (the services,
    which load the very bytes whose sha256 they checked)."""
    model_dir = folder / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (folder / "outside.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "../outside.bin", "offset": "0", "length": "16"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "external_data_escape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weights],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=ONNX_IR_VERSION
    )
    path = model_dir / "escape.onnx"
    path.write_bytes(model.SerializeToString())
    feed = {"x": np.zeros(4, dtype=np.float32)}
    attempts = {
        "onnx.load": lambda: onnx.load(str(path)),
        "onnxruntime (path)": lambda: ort.InferenceSession(str(path)).run(None, feed),
        "onnxruntime (bytes)": lambda: ort.InferenceSession(path.read_bytes()).run(None, feed),
    }
    outcome = {}
    for name, attempt in attempts.items():
        try:
            result = attempt()
            outcome[name] = f"loaded: {result}" if name != "onnx.load" else "loaded"
        except Exception as exc:
            outcome[name] = f"refused: {type(exc).__name__}: {_last_line(str(exc))}"
    return outcome


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= 240 else line[:239] + "…"


def _median_ms(load, repeats: int) -> float:
    load()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def format_table(seed_artifacts_dir: Path, folder: Path, repeats: int = 20) -> pd.DataFrame:
    """pickle / skops / ONNX for the seed model: what runs at load, languages, size, warm load
    time (median of `repeats`, from bytes in memory), and what versions must match. Each file
    is read once and its sha256 checked on those bytes, which are then what is loaded."""
    manifest_path = Path(seed_artifacts_dir) / manifest_io.MANIFEST_NAME
    pickle_bytes = manifest_io.read_verified(manifest_path, manifest_path.with_name("model.pkl"))
    onnx_bytes = manifest_io.read_verified(manifest_path, manifest_path.with_name("model.onnx"))
    model = pickle.loads(pickle_bytes)  # the verified bytes, not the path opened again
    folder.mkdir(parents=True, exist_ok=True)
    skops_path = folder / "model.skops"
    sio.dump(model, skops_path)
    skops_bytes = skops_path.read_bytes()
    untrusted = sio.get_untrusted_types(data=skops_bytes)
    rows = [
        {
            "format": "pickle",
            "what runs at load": "any callable the file names (__reduce__): arbitrary code",
            "refuses unknown code": "no (only the services' sha256 check, before loading)",
            "languages": "Python",
            "bytes": len(pickle_bytes),
            "warm_load_ms": _median_ms(lambda: pickle.loads(pickle_bytes), repeats),
            "versions that must match": "scikit-learn (and NumPy) of training",
        },
        {
            "format": "skops",
            "what runs at load": "constructors of trusted types only (untrusted in this "
            f"model, to pass as trusted=: {', '.join(untrusted) or 'none'})",
            "refuses unknown code": "yes, unless the caller trusts the type",
            "languages": "Python",
            "bytes": len(skops_bytes),
            "warm_load_ms": _median_ms(lambda: sio.loads(skops_bytes, trusted=untrusted), repeats),
            "versions that must match": "scikit-learn of training (it rebuilds its objects)",
        },
        {
            "format": "ONNX",
            "what runs at load": "no code from the file: operators of the runtime",
            "refuses unknown code": "n/a (no code in the format); external data confined",
            "languages": "any with ONNX Runtime (C, C++, C#, Go, Java, JS, Python, Rust…)",
            "bytes": len(onnx_bytes),
            "warm_load_ms": _median_ms(lambda: convert.load_session(onnx_bytes), repeats),
            "versions that must match": f"opset ≤ the runtime's (here {convert.TARGET_OPSET}, "
            f"ai.onnx.ml {convert.ML_OPSET}; ONNX Runtime {ort.__version__})",
        },
    ]
    return pd.DataFrame(rows).set_index("format")


def safety_findings(
    unpickled: dict, refusal: Refusal, skops: dict, onnx_escape: dict[str, str]
) -> list[str]:
    """One sentence per demonstration, from what happened."""
    sentences = [
        "Unpickling the crafted file with no check "
        + (
            "wrote the marker: a pickle is code."
            if unpickled["marker_written"]
            else "did not write the marker (unexpected: the demonstration failed)."
        )
    ]
    if refusal.refused_before_unpickling:
        sentences.append(
            "python-api-pkl refused it before unpickling: exit status 2 and no marker."
        )
    else:
        sentences.append(
            f"python-api-pkl did NOT refuse it cleanly: exit status {refusal.exit_status}, "
            f"marker written: {refusal.marker_written}."
        )
    sentences.append(
        f"skops listed {len(skops['untrusted_types'])} untrusted type(s) "
        f"({', '.join(skops['untrusted_types'])}) and "
        + (
            "refused to load it (no marker); "
            if skops["refused"] and not skops["marker_after_refusal"]
            else "did NOT refuse it; "
        )
        + (
            "once the caller trusted the type, its code ran (marker written)."
            if skops["marker_after_trusting"]
            else "trusting it wrote no marker."
        )
    )
    refused = [name for name, outcome in onnx_escape.items() if outcome.startswith("refused")]
    sentences.append(
        f"An ONNX file whose weights point outside its folder was refused by "
        f"{len(refused)} of {len(onnx_escape)} loaders ({', '.join(refused) or 'none'})."
    )
    return sentences

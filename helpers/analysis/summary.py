"""`run_dir/summary.json`: the run's result in one machine-readable file.

Written by notebook 05 from what the run folder already holds — the stack's record
(`stack/stack.json`: backend, limits and whether they were enforced), the model's manifest
and parity report (notebooks 01/02), and the per-service numbers of each load-test phase —
so tests, CI and later comparisons read one file instead of re-running the analysis.

Schema (stable keys; later stages only add keys):
    {"run_id", "profile", "mode", "backend", "limits_enforced", "limits": {service: {...}},
     "model": {"test_accuracy", "cv_auc", "sha256": {...}}, "parity": {...} | null,
     "phases": {mode: {"window": [start, end], "generator_cpu_seconds"}},
     "services": {service: {mode: {requests, error_rate, dropped_iterations, server_p95_ms,
                                   client_p95_ms, peak_rpm, mean_cpu_cores, peak_cpu_cores,
                                   peak_memory_working_set_bytes, throttled_ratio, oom_kills,
                                   ...}}},
     "claims": {mode: [{"claim", "verdict", "evidence"}]}}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.model import manifest as manifest_io

SUMMARY_NAME = "summary.json"
PARITY_CANDIDATES = ("model/parity.json", "parity.json")
SERVICE_FIELDS = (
    "requests",
    "error_rate",
    "dropped_iterations",
    "server_p95_ms",
    "client_p95_ms",
    "peak_rpm",
    "mean_cpu_cores",
    "peak_cpu_cores",
    "peak_memory_working_set_bytes",
    "throttled_ratio",
    "oom_kills",
)


def _plain(value: Any) -> Any:
    """JSON has no NaN (RFC 8259): unknown numbers become null, numpy scalars plain numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_stack_record(run_dir: Path) -> dict[str, Any]:
    """The stack's own record of the run (backend, limits); {} if the stack wrote none."""
    path = Path(run_dir) / "stack" / "stack.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_parity(run_dir: Path) -> dict[str, Any] | None:
    """Notebook 02's parity report, wherever in the run folder it was written."""
    for candidate in PARITY_CANDIDATES:
        path = Path(run_dir) / candidate
        if path.exists():
            return json.loads(path.read_text())
    found = sorted(Path(run_dir).rglob("parity*.json"))
    return json.loads(found[0].read_text()) if found else None


def model_section(artifacts_dir: Path) -> dict[str, Any]:
    manifest = manifest_io.load(Path(artifacts_dir) / manifest_io.MANIFEST_NAME)
    training = manifest.get("training", {})
    return {
        "test_accuracy": training.get("test_accuracy"),
        "cv_auc": training.get("cv_auc"),
        "sha256": {name: a["sha256"] for name, a in manifest.get("artifacts", {}).items()},
        "versions": manifest.get("versions", {}),
    }


def build(
    *,
    run_id: str,
    profile: str,
    mode: str,
    backend: str,
    limits_enforced: bool | None,
    limits: dict[str, Any],
    model: dict[str, Any],
    parity: dict[str, Any] | None,
    per_service: dict[str, pd.DataFrame],
    phases: dict[str, dict[str, Any]],
    claims: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    """The summary as a dict; `per_service` maps mode → service_metrics() table."""
    services: dict[str, dict[str, Any]] = {}
    for phase_mode, table in per_service.items():
        for service, row in table.iterrows():
            services.setdefault(str(service), {})[phase_mode] = {
                key: _plain(row[key]) for key in table.columns
            }
    missing = [
        f"{service}/{m}: {field}"
        for service, by_mode in services.items()
        for m, values in by_mode.items()
        for field in SERVICE_FIELDS
        if field not in values
    ]
    if missing:
        raise KeyError(f"per-service tables lack summary fields: {missing}")
    return {
        "run_id": run_id,
        "profile": profile,
        "mode": mode,
        "backend": backend,
        "limits_enforced": limits_enforced,
        "limits": limits,
        "model": model,
        "parity": parity,
        "phases": {m: {k: _plain(v) for k, v in p.items()} for m, p in phases.items()},
        "services": services,
        "claims": {m: table.to_dict(orient="records") for m, table in claims.items()},
    }


def write(summary: dict[str, Any], run_dir: Path) -> Path:
    path = Path(run_dir) / SUMMARY_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, allow_nan=False, default=_plain) + "\n")
    tmp.replace(path)
    return path

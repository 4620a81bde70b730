"""`run_dir/summary.json`: the run's result in one machine-readable file.

Written by notebook 05 from what the run folder alone holds — the stack's record
(`stack/stack.json`: backend, limits and whether they were enforced; `stack/manifest.json`: the
model the services served; `stack/events.json`: services that exited), notebook 02's parity
report, and the per-service numbers of each load-test phase — so tests, CI and later
comparisons read one file instead of re-running the analysis, and re-running the analysis
later gives the same file.

Schema (stable keys; later stages only add keys):
    {"run_id", "profile", "mode", "backend", "limits_enforced", "limits": {service: {...}},
     "model": {"test_accuracy", "cv_auc", "sha256": {...}}, "parity": {...} | null,
     "phases": {mode: {"window": [start, end], "generator_cpu_seconds"}},
     "services": {service: {mode: {requests, error_rate, dropped_iterations, server_p95_ms,
                                   client_p95_ms, peak_rpm, mean_cpu_cores, peak_cpu_cores,
                                   peak_memory_working_set_bytes, throttled_ratio, oom_kills,
                                   ...}}},
     "claims": {mode: [{"claim", "verdict", "evidence"}]},
     "service_exits": [{"service", "at", "how", "oom_kills", "log_tail"}], "interrupted"}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import files
from helpers.serving.protocol import Limits, ServiceExit

SUMMARY_NAME = "summary.json"
PARITY_PATH = "model/parity.json"
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
    """JSON has no NaN (RFC 8259): unknown numbers become null, numpy scalars plain numbers —
    all the way down through dicts and lists (tables' records carry NaN for "not measured")."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json so far ({} before any notebook wrote it)."""
    path = Path(run_dir) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def section(run_dir: Path, name: str, written_by: str) -> Any:
    """One section of summary.json, or a clear error naming the notebook that writes it."""
    found = read(run_dir).get(name)
    if not found:
        raise FileNotFoundError(
            f"summary.json in {run_dir} has no {name!r} section: run notebook {written_by} "
            f"in this run folder first (make study runs them in order)"
        )
    return found


def read_stack_record(run_dir: Path) -> dict[str, Any]:
    """The stack's own record of the run (backend, limits); {} if the stack wrote none."""
    path = Path(run_dir) / "stack" / "stack.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_parity(run_dir: Path) -> dict[str, Any] | None:
    """Notebook 02's parity report (run_dir/model/parity.json), None if 02 did not run here."""
    path = Path(run_dir) / PARITY_PATH
    return json.loads(path.read_text()) if path.exists() else None


def model_section(run_dir: Path) -> dict[str, Any]:
    """The served model's identity, from the manifest the stack froze into the run folder."""
    path = Path(run_dir) / "stack" / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: no stack ran for this run folder")
    manifest = json.loads(path.read_text())
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
    limits: Mapping[str, Limits],
    model: dict[str, Any],
    parity: dict[str, Any] | None,
    per_service: dict[str, pd.DataFrame],
    phases: dict[str, dict[str, Any]],
    claims: dict[str, pd.DataFrame],
    service_exits: list[dict[str, Any]] = (),
    interrupted: bool = False,
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
        "limits": {name: asdict(value) for name, value in limits.items()},
        "model": model,
        "parity": parity,
        "phases": {m: {k: _plain(v) for k, v in p.items()} for m, p in phases.items()},
        "services": services,
        "claims": {m: table.to_dict(orient="records") for m, table in claims.items()},
        "service_exits": list(service_exits),
        "interrupted": interrupted,
    }


def warnings(exits: list[ServiceExit], interrupted: bool) -> str:
    """Markdown for the top of the report: what spoils this run's figures, or that nothing did."""
    said = [f"⚠️ **{e.sentence()}**: its figures after that are not measured." for e in exits]
    if interrupted:
        said.append("⚠️ **The load test was interrupted** (Ctrl-C): its last phase is partial.")
    return "\n\n".join(said) or "Every service served until the end of every phase."


def update(run_dir: Path, **sections: Any) -> Path:
    """Add (or replace) top-level sections of summary.json — notebooks after 05 (capacity,
    cost, ablation, zoo) add theirs to the same file; a run without 05 starts a new one."""
    path = Path(run_dir) / SUMMARY_NAME
    current = json.loads(path.read_text()) if path.exists() else {"run_id": Path(run_dir).name}
    return write(current | sections, run_dir)


def write(summary: dict[str, Any], run_dir: Path) -> Path:
    return files.write_json(
        Path(run_dir) / SUMMARY_NAME, _plain(summary), allow_nan=False, default=str
    )


def add_findings(run_dir: Path, **by_topic: str | list[str]) -> Path:
    """Put a notebook's computed sentences into summary.json's `findings` (the report's
    first page says them), replacing those of the same topics."""
    current = read(run_dir).get("findings", {})
    return update(run_dir, findings=current | by_topic)

"""What the local backend's stack.json records: enough to find, re-read and judge a run later —
endpoints, pids, cgroups, limits read back, each service's environment, the telemetry path,
the histogram's buckets, GOMAXPROCS as the Go runtime chose it, and every tool's version."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from helpers import paths
from helpers.serving import collector, prometheus_server
from helpers.serving.local import cgroups, exporter
from helpers.serving.local.cgroups import Cgroup
from helpers.serving.process import ManagedProcess
from helpers.serving.protocol import Stack, gomaxprocs_from_log, record_header
from helpers.serving.services import LATENCY_BUCKETS_S, ServiceSpec


class RecordedStack(Stack, Protocol):
    """What the record reads of a running local stack (helpers.serving.local.stack.LocalStack),
    named here so the record needs no import of the stack that writes it."""

    telemetry: str
    telemetry_of: dict[str, str]
    artifacts_dir: Path
    with_collector: bool
    specs: dict[str, ServiceSpec]
    processes: dict[str, ManagedProcess]
    cgroups: dict[str, Cgroup]
    ports: dict[str, int]
    metrics_urls: dict[str, str]
    exporter_url: str
    service_env: dict[str, dict[str, str]]
    healthz: dict[str, Any]
    stale_cgroups_removed: list[str]

    def log_path(self, name: str) -> Path: ...


def _command_version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "?"


def versions(stack: RecordedStack) -> dict[str, str]:
    layout = cgroups.detect_layout()
    found = {
        "prometheus": prometheus_server.version(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cgroup": layout.version if layout else "none",
    }
    try:
        found["k6"] = _command_version([str(paths.k6_binary()), "version"])
    except FileNotFoundError as error:
        found["k6"] = f"unavailable ({error})"
    for name, health in stack.healthz.items():
        found[name] = str(health.get("runtime", "?"))
    return found


def describe(stack: RecordedStack) -> dict[str, Any]:
    """Everything stack.json records: enough to find, re-read and judge the run later."""
    go = stack.processes.get("go-api-onnx")
    gomaxprocs = gomaxprocs_from_log(go.log_tail(200)) if go else None
    return record_header(stack) | {
        "machine": stack.machine,
        "telemetry": stack.telemetry,
        "collector": {
            "pid": stack.processes[collector.NAME].pid,
            "cgroup": stack.cgroups[collector.NAME].relpath,
            "ports": {k: stack.ports[k] for k in collector.PORT_KEYS.values()},
        }
        if stack.with_collector
        else None,
        "prometheus": {
            "url": stack.prometheus_url,
            "remote_write_url": stack.remote_write_url,
            "data_dir": str(stack.run_dir / "prometheus" / "data"),
            "scrape_interval_s": prometheus_server.SCRAPE_INTERVAL_S,
            "pid": stack.processes["prometheus"].pid,
        },
        "exporter": {"url": stack.exporter_url, "pid": stack.processes[exporter.JOB].pid},
        "services": {
            name: {
                "service": stack.instances[name].service,
                "artifacts_dir": str(stack.instances[name].artifacts_dir or stack.artifacts_dir),
                "telemetry": stack.telemetry_of[name] if name in stack.metrics_urls else None,
                "url": stack.service_urls[name],
                "load_target_url": stack.load_target_urls[name],
                "metrics_url": stack.metrics_urls[name],
                "pid": stack.processes[name].pid,
                "cgroup": stack.cgroups[name].relpath,
                "cgroup_dirs": {k: str(v) for k, v in stack.cgroups[name].dirs.items()},
                "limits": asdict(stack.limits[name]),
                "environment": stack.service_env.get(name, {}),
                "healthz": stack.healthz.get(name),
                "gomaxprocs": gomaxprocs_from_log(stack.processes[name].log_tail(200))
                if stack.instances[name].service == "go-api-onnx"
                else None,
                "log": str(stack.log_path(name)),
            }
            for name in stack.specs
        },
        "latency_buckets_s": list(LATENCY_BUCKETS_S),
        "go_maxprocs": gomaxprocs,
        "stale_cgroups_removed": stack.stale_cgroups_removed,
        "versions": versions(stack),
    }

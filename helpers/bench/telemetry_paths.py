"""`make bench`, telemetry section: what telemetry costs each service, per path.

Three stacks in turn — telemetry off, pulled by Prometheus (the contract's local default), and
pushed as OTLP through the OpenTelemetry Collector (the post's path) — each service measured at
the same rate on each, with what the collector itself spends per request it carries.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from helpers import paths
from helpers.load import capacity, steps
from helpers.prometheus import client
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack

TELEMETRY_PATHS = {
    "off": ({"OTEL_METRICS_EXPORTER": "none"}, "pull"),
    "pulled by Prometheus": ({}, "pull"),
    "pushed to the collector": ({}, "collector"),
}


def telemetry_paths(
    backend: str,
    run_dir: Path,
    artifacts_dir: Path,
    rates: dict[str, int],
    duration_s: float,
    repeats: int = 2,
) -> pd.DataFrame:
    """What telemetry costs each service, per path (off / pulled / pushed through the
    collector), and what the collector itself spends per request it carries."""
    rows = []
    for index, (path, (environment, telemetry)) in enumerate(TELEMETRY_PATHS.items()):
        path_dir = run_dir / "telemetry" / f"{index}-{telemetry}"
        service_env = {service: dict(environment) for service in rates}
        with start_stack(
            backend,
            run_dir=path_dir,
            artifacts_dir=artifacts_dir,
            service_env=service_env,
            telemetry=telemetry,
        ) as stack:
            ranges = feature_ranges(stack.run_dir)
            for service, rate in rates.items():
                for repeat in range(repeats):
                    step = steps.measure(stack, service, rate, duration_s, ranges, path_dir, repeat)
                    print(f"  [{path}] {capacity.describe(step).strip()}", flush=True)
                    carried, collector_bytes = math.nan, math.nan
                    if telemetry == "collector":
                        collector_bytes = client.query_instant(
                            stack.prometheus_url,
                            'container_memory_working_set_bytes{name="otel-collector"}',
                            step.ended_at,
                        ).get("", math.nan)
                        cores = steps.counter_rate(
                            stack.prometheus_url,
                            "container_cpu_usage_seconds_total",
                            "otel-collector",
                            step.started_at,
                            step.ended_at,
                        )
                        elapsed = step.ended_at - step.started_at
                        carried = (
                            cores * elapsed * 1e6 / step.requests if step.requests else math.nan
                        )
                    rows.append(
                        {
                            "service": service,
                            "path": path,
                            "repeat": repeat,
                            "rate": rate,
                            "cpu_us_per_request": step.service_cpu_us_per_request,
                            "collector_cpu_us_per_request": carried,
                            "collector_working_set_bytes": collector_bytes,
                            "p95_ms": step.p95_ms,
                        }
                    )
    return pd.DataFrame(rows)


def section(args: argparse.Namespace) -> None:
    run_dir = paths.RESULTS_DIR / f"bench-telemetry-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    rates = {"python-api-pkl": 150, "python-api-onnx": 300, "go-api-onnx": 300}
    frame = telemetry_paths("local", run_dir, Path(args.artifacts_dir), rates, 8.0, 2)
    table = frame.groupby(["service", "path"], sort=False).median(numeric_only=True)
    columns = ["rate", "cpu_us_per_request", "collector_cpu_us_per_request", "p95_ms"]
    print(table[columns].round(1).to_string())
    memory = frame["collector_working_set_bytes"].max() / 2**20
    print(f"  the collector's working set at most {memory:.1f} MiB; steps in {run_dir}")

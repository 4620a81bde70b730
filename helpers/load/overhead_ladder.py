"""The overhead ladder (notebook 06): where a request's CPU goes.

Each rung is a fresh stack in one configuration, every service measured at the same rate on
every rung:
    framework   PREDICT_STAGE=noop   a fixed answer, the body is not parsed
    + parsing   PREDICT_STAGE=parse  the contract's parsing and validation, a fixed answer
    + model     PREDICT_STAGE=full   the model runs (telemetry off: no instrumentation at all)
    + telemetry the default: the latency histogram, scraped by Prometheus
A rung a service cannot take (its /healthz does not report the stage) is not measured rather
than measured wrong.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from helpers.load import capacity, steps
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack


@dataclass(frozen=True)
class Rung:
    name: str
    environment: dict[str, str]
    stage: str  # what /healthz must say (absent = "full")


RUNGS = (
    Rung("framework", {"PREDICT_STAGE": "noop", "OTEL_METRICS_EXPORTER": "none"}, "noop"),
    Rung("+ parsing", {"PREDICT_STAGE": "parse", "OTEL_METRICS_EXPORTER": "none"}, "parse"),
    Rung("+ model", {"PREDICT_STAGE": "full", "OTEL_METRICS_EXPORTER": "none"}, "full"),
    Rung("+ telemetry", {}, "full"),
)


def ladder(
    backend: str,
    run_dir: Path,
    artifacts_dir: Path,
    rates: dict[str, int],
    duration_s: float,
    repeats: int = 2,
    rungs: tuple[Rung, ...] = RUNGS,
) -> pd.DataFrame:
    """Every rung's stack in turn, every service at its rate: rows of service, rung, CPU
    µs/request (median over repeats), its spread, and whether the rung could be measured."""
    rows = []
    for index, rung in enumerate(rungs):
        rung_dir = run_dir / "ladder" / f"{index}-{rung.stage}-{len(rung.environment)}"
        environment = {service: dict(rung.environment) for service in rates}
        with start_stack(
            backend, run_dir=rung_dir, artifacts_dir=artifacts_dir, service_env=environment
        ) as stack:
            ranges = feature_ranges(stack.run_dir)
            for service, rate in rates.items():
                said = stack_stage(stack, service)
                if said != rung.stage:
                    rows.append(_row(service, rung, rate, [], f"the service runs {said!r}"))
                    continue
                measured = [
                    steps.measure(stack, service, rate, duration_s, ranges, rung_dir, repeat)
                    for repeat in range(repeats)
                ]
                for step in measured:
                    print(f"  [{rung.name}] {capacity.describe(step).strip()}", flush=True)
                rows.append(_row(service, rung, rate, measured, ""))
    return pd.DataFrame(rows)


def ladder_table(frame: pd.DataFrame) -> pd.DataFrame:
    """CPU µs per request, a row per service and a column per rung, in the ladder's order."""
    table = frame.pivot(index="service", columns="rung", values="cpu_us_per_request")
    return table.reindex(
        index=list(dict.fromkeys(frame["service"])), columns=list(dict.fromkeys(frame["rung"]))
    )


def stack_stage(stack, service: str) -> str:
    """The PREDICT_STAGE a running service reports on /healthz ('full' when it says none)."""
    health = httpx.get(f"{stack.service_urls[service]}/healthz", timeout=5).json()
    return str(health.get("predict_stage", "full"))


def _row(service: str, rung: Rung, rate: int, measured: list, problem: str) -> dict:
    values = [s.service_cpu_us_per_request for s in measured]
    middle = statistics.median(values) if values else float("nan")
    spread = (max(values) - min(values)) / middle if len(values) > 1 and middle else float("nan")
    return {
        "service": service,
        "rung": rung.name,
        "rate": rate,
        "cpu_us_per_request": middle,
        "spread": spread,
        "p95_ms": statistics.median(s.p95_ms for s in measured) if measured else float("nan"),
        "measured": not problem,
        "problem": problem,
    }

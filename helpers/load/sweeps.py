"""Sweeps made of steps: CPU per request against load, and the overhead ladder.

- `cpu_curve`: each service's CPU per request at several constant rates, from a trickle to its
  capacity. At light load a request costs the wake-ups around it (the event loop, the
  runtime's threads, the scrape), not its work: the curve is why a light-load figure misleads.
- `ladder`: where a request's CPU goes. Each rung is a fresh stack in one configuration, every
  service measured at the same rate on every rung:
    framework   PREDICT_STAGE=noop   a fixed answer, the body is not parsed
    + parsing   PREDICT_STAGE=parse  the contract's parsing and validation, a fixed answer
    + model     PREDICT_STAGE=full   the model runs (telemetry off: no instrumentation at all)
    + telemetry the default: the latency histogram, scraped by Prometheus
  A rung a service cannot take (its /healthz does not report the stage) is not measured
  rather than measured wrong.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from helpers import net
from helpers.analysis import metrics
from helpers.load import capacity, loadtest, steps
from helpers.serving.stack import start_stack


@dataclass(frozen=True)
class Size:
    """How long notebook 06 measures, per profile (smoke: about a minute in all)."""

    step_s: float  # one constant-rate step
    repeats: int  # per capacity rate and per ladder rung
    start_rate: int
    max_rate: int
    precision: float  # of the capacity bisection (relative)
    budget_s: float  # of the capacity search, all services
    light_rates: tuple[int, ...]  # the CPU curve's trickle
    fractions: tuple[float, ...]  # the CPU curve's points, as fractions of capacity

    @property
    def search(self) -> dict[str, float]:
        return {
            "step_s": self.step_s,
            "repeats": self.repeats,
            "start_rate": self.start_rate,
            "max_rate": self.max_rate,
            "precision": self.precision,
        }


SIZES = {
    # Steps of at least 4 s: a step's CPU is read from the 1 s scrapes inside it.
    "smoke": Size(4.0, 1, 50, 400, 0.5, 60, (10,), (0.5, 1.0)),
    "quick": Size(5.0, 2, 50, 12800, 0.1, 420, (10, 50), (0.25, 0.5, 0.75, 1.0)),
    "seed": Size(10.0, 3, 50, 12800, 0.05, 1200, (10, 50), (0.25, 0.5, 0.75, 1.0)),
}
CROSSCHECK_MAX_RPS = 800  # k6 needs about a core at this rate here: both generators reach it
CROSSCHECK_CONNECTIONS = 10  # the same traffic from both: at most 10 requests in flight


def size_for(profile: str) -> Size:
    if profile not in SIZES:
        raise ValueError(f"profile {profile!r} is unknown; expected one of {', '.join(SIZES)}")
    return SIZES[profile]


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


def cpu_curve(
    stack, services: list[str], rates: dict[str, list[int]], duration_s: float, out_dir: Path
) -> pd.DataFrame:
    """One step per (service, rate): rows of service, rate, CPU µs/request, p95, generator CPU."""
    ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
    rows = []
    for service in services:
        for rate in rates[service]:
            step = steps.measure(stack, service, rate, duration_s, ranges, out_dir)
            print(capacity.describe(step), flush=True)
            rows.append(asdict(step))
    return pd.DataFrame(rows)


def curve_rates(capacity_rps: int | None, size: Size) -> list[int]:
    """A trickle, then fractions of the measured capacity up to it."""
    top = [round(capacity_rps * f) for f in size.fractions] if capacity_rps else []
    return sorted({r for r in (*size.light_rates, *top) if r >= 1})


def half_capacity(result: capacity.ServiceCapacity) -> int:
    """The ladder's and the cross-check's rate: high, yet with room (half the capacity)."""
    return max(10, round((result.capacity_rps or 20) / 2))


def crosscheck(stack, results: list[capacity.ServiceCapacity], size: Size, out_dir: Path):
    """Each service at one rate both generators reach, measured by vegeta and by k6."""
    ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
    rows = []
    for result in results:
        rate = min(half_capacity(result), CROSSCHECK_MAX_RPS)
        for repeat in range(size.repeats):
            for generator in steps.GENERATORS:  # interleaved: drifts of the machine hit both
                step = steps.measure(
                    stack,
                    result.service,
                    rate,
                    size.step_s,
                    ranges,
                    out_dir,
                    repeat,
                    generator=generator,
                    connections=CROSSCHECK_CONNECTIONS,
                )
                print(capacity.describe(step), flush=True)
                rows.append(asdict(step))
    return pd.DataFrame(rows)


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
            ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
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
            ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
            for service, rate in rates.items():
                for repeat in range(repeats):
                    step = steps.measure(stack, service, rate, duration_s, ranges, path_dir, repeat)
                    print(f"  [{path}] {capacity.describe(step).strip()}", flush=True)
                    carried, collector_bytes = math.nan, math.nan
                    if telemetry == "collector":
                        collector_bytes = metrics.query_instant(
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


def stack_stage(stack, service: str) -> str:
    """The PREDICT_STAGE a running service reports on /healthz ('full' when it says none)."""
    import httpx

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


def crosscheck_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The cross-check side by side: per service and generator, the service's and the
    generator's CPU per request and the p95 each generator saw."""
    columns = {
        "rate": "rate [req/s]",
        "service_cpu_us_per_request": "service CPU [µs/req]",
        "p95_ms": "p95 seen [ms]",
        "generator_cpu_us_per_request": "generator CPU [µs/req]",
    }
    medians = frame.groupby(["service", "generator"], sort=False)[list(columns)].median()
    return medians.rename(columns=columns).round(1)


def serve_models(
    backend: str,
    run_dir: Path,
    models: dict[str, tuple[Path, list[str]]],
    rate: int,
    duration_s: float,
    repeats: int = 1,
) -> pd.DataFrame:
    """Each model of the zoo served by the services that can load it (name → its artifacts
    folder and those services), each service measured at `rate`: rows of model, service, CPU
    µs/request, p95, and — when a service could not start or stopped — why."""
    rows = []
    for model, (artifacts_dir, services) in models.items():
        remaining = list(services)
        while remaining:
            model_dir = run_dir / "zoo-serving" / model
            try:
                stack = start_stack(
                    backend, run_dir=model_dir, artifacts_dir=artifacts_dir, services=remaining
                )
            except net.NotReady as error:  # one service cannot load this model: say so, go on
                failed = next((s for s in remaining if str(error).startswith(s)), remaining[0])
                reason = str(error).splitlines()[0]
                rows.append({"model": model, "service": failed, "problem": reason})
                remaining.remove(failed)
                continue
            with stack:
                ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
                for service in remaining:
                    measured = [
                        steps.measure(stack, service, rate, duration_s, ranges, model_dir, repeat)
                        for repeat in range(repeats)
                    ]
                    for step in measured:
                        print(f"  [{model}] {capacity.describe(step).strip()}", flush=True)
                    stopped = [e.sentence() for e in stack.failures() if e.service == service]
                    rows.append(
                        {
                            "model": model,
                            "service": service,
                            "rate": rate,
                            "cpu_us_per_request": statistics.median(
                                s.service_cpu_us_per_request for s in measured
                            ),
                            "p95_ms": statistics.median(s.p95_ms for s in measured),
                            "error_rate": max(s.error_rate for s in measured),
                            "problem": "; ".join(stopped),
                        }
                    )
            remaining = []
    return pd.DataFrame(rows)


def capacity_of(
    backend: str, run_dir: Path, artifacts_dir: Path, services: list[str], size: Size
) -> list[capacity.ServiceCapacity]:
    """The capacity of `services` serving the model in `artifacts_dir`, on a stack of their own."""
    with start_stack(
        backend, run_dir=run_dir, artifacts_dir=artifacts_dir, services=services
    ) as stack:
        return capacity.run(stack, run_dir, budget_s=size.budget_s / 2, **size.search)

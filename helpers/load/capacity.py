"""Notebook 06's measurements: each service's capacity under the budget, where its CPU goes,
and what a request costs at light load — all on one stack, measured side by side.

The stack runs every service as it is served (tuned, telemetry pulled) and, beside it, the
rungs of its overhead ladder as instances of their own under the same limits:
    noop        PREDICT_STAGE=noop   the bare framework answering a fixed body (the floor)
    parse       PREDICT_STAGE=parse  + the contract's parsing and validation
    model       telemetry off        + the model (no instrumentation at all)
    served      the service itself   + telemetry (the latency histogram, scraped)
    fastapi     FRAMEWORK=fastapi    the same service written as FastAPI path operations with
                                     pydantic models (Python services only)
Capacity is searched for the served instances at once, a step of each in turn
(helpers.load.search); the ladder is a paired comparison per service at a share of its
capacity (helpers.load.interleave), so a rung's cost is a difference within rounds, and the
service's CPU per request is a multiple of its own no-op floor with an interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import files
from helpers.load import interleave, search, stepping, windows
from helpers.serving.instances import SERVICE_NAMES, Instance, variant
from helpers.sizing import CapacitySize, Windows

PYTHON = ("python-api-pkl", "python-api-onnx")
TELEMETRY_OFF = {"OTEL_METRICS_EXPORTER": "none"}
PILOT_WINDOWS = 3


@dataclass(frozen=True)
class Rung:
    tag: str  # the instance's suffix ('' = the service as served)
    label: str
    environment: dict[str, str]
    services: tuple[str, ...] = SERVICE_NAMES


RUNGS = (
    Rung("noop", "framework (no-op)", {"PREDICT_STAGE": "noop", **TELEMETRY_OFF}),
    Rung("parse", "+ parsing", {"PREDICT_STAGE": "parse", **TELEMETRY_OFF}),
    Rung("model", "+ model", dict(TELEMETRY_OFF)),
    Rung("", "+ telemetry (served)", {}),
    Rung("fastapi", "as FastAPI path operations", {"FRAMEWORK": "fastapi"}, PYTHON),
)
FLOOR, SERVED = RUNGS[0].label, RUNGS[3].label


def instances(services: Iterable[str] = SERVICE_NAMES) -> list[Instance]:
    """Every rung of every service, each an instance under the budget."""
    return [
        variant(service, rung.tag, environment=dict(rung.environment))
        for service in services
        for rung in RUNGS
        if service in rung.services
    ]


def targets(stack: Any, ranges: dict[str, Any], out_dir: Path) -> Callable[[str], Path]:
    """A vegeta targets file per instance, made on first use (the same bodies for all)."""
    made: dict[str, Path] = {}

    def of(instance: str) -> Path:
        if instance not in made:
            url = stack.load_target_urls[instance]
            made[instance] = windows.targets_file(url, ranges, out_dir / f"{instance}.json")
        return made[instance]

    return of


def search_all(
    stack: Any,
    services: list[str],
    size: CapacitySize,
    ranges: dict[str, Any],
    out_dir: Path,
    progress: Callable[[str], None] = print,
) -> list[search.Search]:
    """The capacity of every served instance, searched at once; capacity.json written."""
    target_of = targets(stack, ranges, out_dir / "targets")
    log = windows.WindowLog(out_dir / "windows.jsonl")
    searches = [
        search.Search(s, stack.limits[s].cpu_cores, size.pilot_rate, size.max_rate, size.precision)
        for s in services
    ]

    search_at_once(stack, searches, target_of, size.windows, size.search_s, log, progress)
    save(searches, out_dir / "capacity.json")
    return searches


def search_at_once(
    stack: Any,
    searches: list[search.Search],
    target_of: Callable[[str], Path],
    size: Windows,
    budget_s: float,
    log: windows.WindowLog,
    progress: Callable[[str], None] = print,
    pilot_windows: int | None = PILOT_WINDOWS,
    label: str = "capacity",
) -> list[search.Search]:
    """Every search a stable step in turn (helpers.load.search) until all are done or
    `budget_s` is spent. A pilot (a search's first step, there only to predict the bracket
    from its CPU per request) takes `pilot_windows`; None: judged like any other step."""

    def step(found: search.Search, rate: int) -> stepping.Step:
        pilot = not found.steps and pilot_windows is not None
        return stepping.run(
            stack,
            found.target,
            rate,
            target_of(found.target),
            size.window_s,
            pilot_windows if pilot else size.max_windows,
            log,
            f"{label} {rate}",
        )

    deadline = time.monotonic() + budget_s
    return search.run_interleaved(searches, step, lambda: time.monotonic() > deadline, progress)


def trickle(
    stack: Any,
    services: list[str],
    size: CapacitySize,
    ranges: dict[str, Any],
    out_dir: Path,
    progress: Callable[[str], None] = print,
) -> list[stepping.Step]:
    """The light end of the CPU-per-request curve: each service at the trickle rates."""
    target_of = targets(stack, ranges, out_dir / "targets")
    log = windows.WindowLog(out_dir / "windows.jsonl")
    steps = []
    for rate in size.trickle_rates:
        for service in services:
            taken = stepping.run(
                stack, service, rate, target_of(service), size.windows.window_s, 3, log, "trickle"
            )
            steps.append(taken)
            progress(taken.describe())
    return steps


def ladder(
    stack: Any,
    found: list[search.Search],
    size: CapacitySize,
    ranges: dict[str, Any],
    out_dir: Path,
    progress: Callable[[str], None] = print,
) -> list[interleave.Comparison]:
    """Each service's rungs in alternating windows at `ladder_fraction` of its capacity."""
    target_of = targets(stack, ranges, out_dir / "targets")
    comparisons = []
    for result in found:
        service = result.target
        rate = max(10, round(size.ladder_fraction * (result.low or 2 * size.pilot_rate)))
        arms = [
            interleave.Arm(variant(service, rung.tag).name, rung.label)
            for rung in (RUNGS[3], *RUNGS[:3], *RUNGS[4:])  # the served one is the reference
            if service in rung.services
        ]
        comparisons.append(interleave.Comparison(service, arms, rate))
    interleave.run_sized(
        stack, comparisons, target_of, size.windows, size.ladder_s,
        windows.WindowLog(out_dir / "ladder.jsonl"), progress,
    )  # fmt: skip
    files.write_json(
        out_dir / "ladder.json", [c.record(size.windows.min_effect) for c in comparisons]
    )
    return comparisons


def save(found: list[search.Search], path: Path) -> Path:
    record = {
        "objective": {
            "p95_ms": stepping.P95_MS,
            "error_rate": stepping.ERROR_RATE,
            "behind": stepping.BEHIND_RATIO,
        },
        "results": [s.as_record() for s in found],
    }
    return files.write_json(path, record)

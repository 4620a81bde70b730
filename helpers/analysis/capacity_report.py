"""What notebook 06 found, as tables, summary.json sections and computed sentences.

Every figure carries its 95 % interval from this run's own windows (helpers.intervals), and
every sentence is computed: a capacity that is a lower bound is said "≥ X", an effect whose
interval includes zero is "no effect larger than ±x %", a figure measured once is "not
repeated". Nothing here claims that another run would give the same figure — intervals are
*within this run*; `make bench --only reproducibility` is how two runs are compared.

The figures meant to travel between machines are ratios measured in one run: each service's
CPU per request as a multiple of its own framework's no-op floor (paired, same rate) and of
Go's (at each one's capacity).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from helpers import intervals
from helpers.intervals import Estimate
from helpers.load.capacity import FLOOR, RUNGS, SERVED
from helpers.load.interleave import Comparison
from helpers.load.search import Search
from helpers.load.stepping import Step

GO = "go-api-onnx"
MIB = 1024 * 1024


def _at(found: Search) -> Step | None:
    return found.at_capacity()


def capacity_table(found: list[Search]) -> pd.DataFrame:
    rows = []
    for s in found:
        at = _at(s)
        capacity = s.capacity()
        rows.append(
            {
                "service": s.target,
                "capacity [req/s]": s.display(),
                "95 % interval": f"{capacity.low:,.0f}–{capacity.high:,.0f}"
                if capacity.finite
                else "n/a",
                "bound": s.bound(),
                "p95 at capacity [ms]": at.p95_ms().text("{:.1f}") if at else "n/a",
                "CPU at capacity [µs/req]": at.cpu_us_per_request().text() if at else "n/a",
                "working set [MiB]": at.working_set_bytes().scaled(1 / MIB).text("{:.0f}")
                if at
                else "n/a",
                "vegeta [cores]": round(at.generator_cores(), 2) if at else math.nan,
                "steps": len(s.steps),
            }
        )
    return pd.DataFrame(rows).set_index("service")


def capacity_section(found: list[Search]) -> dict[str, dict[str, Any]]:
    """summary.json's `capacity`: per service the rate, how it may be said, its interval, and
    CPU per request and working set at it (each with its interval)."""
    section = {}
    for s in found:
        at = _at(s)
        section[s.target] = {
            "rate_rps": s.low,
            "display": s.display(),
            "bound": s.bound(),
            "interval": s.capacity().record(),
            "cpu_limit": s.cpu_limit,
            "service_cpu_us_per_request": at.cpu_us_per_request().record() if at else None,
            "working_set_bytes": at.working_set_bytes().record() if at else None,
            "p95_ms": at.p95_ms().record() if at else None,
            "generator_cores": at.generator_cores() if at else None,
            "steps": [step.record() for step in s.steps],
        }
    return section


def multiple_of_go(found: list[Search]) -> dict[str, Estimate]:
    """Each service's CPU per request at its capacity over Go's at Go's: windows of the two
    steps resampled independently (the two were measured minutes apart, interleaved)."""
    by_name = {s.target: _at(s) for s in found}
    go = by_name.get(GO)
    if go is None:
        return {}
    go_windows = go.judged
    bottom = ([w.cpu_s for w in go_windows], [float(w.ok) for w in go_windows])
    multiples = {}
    for name, at in by_name.items():
        if at is None:
            continue
        top = ([w.cpu_s for w in at.judged], [float(w.ok) for w in at.judged])
        multiples[name] = intervals.ratio_of_independent(top, bottom)
    return multiples


def floors_section(found: list[Search], ladder: list[Comparison]) -> dict[str, dict[str, Any]]:
    """summary.json's `floors`: per service its CPU per request served and its framework's
    no-op floor at the same rate (paired), their multiple, and the multiple of Go's."""
    go = multiple_of_go(found)
    section = {}
    for comparison in ladder:
        service = comparison.name
        section[service] = {
            "rate_rps": comparison.rate,
            "rounds": len(comparison.complete_rounds()),
            "cpu_us_per_request": comparison.cpu_us_per_request(SERVED).record(),
            "floor_cpu_us_per_request": comparison.cpu_us_per_request(FLOOR).record(),
            "multiple_of_floor": comparison.multiple(SERVED, FLOOR).record(),
            "multiple_of_go": go[service].record() if service in go else None,
        }
    return section


def ladder_table(ladder: list[Comparison]) -> pd.DataFrame:
    """Per service and rung: CPU per request, and what the rung adds to the one it builds on
    (paired within rounds); the FastAPI rung is held against the service as served."""
    rows = []
    for comparison in ladder:
        labels = {a.label for a in comparison.arms}
        previous = None
        for rung in RUNGS:
            if rung.label not in labels:
                continue
            base = SERVED if rung.tag == "fastapi" else previous
            rows.append(
                {
                    "service": comparison.name,
                    "rung": rung.label,
                    "rate [req/s]": comparison.rate,
                    "CPU [µs/req]": comparison.cpu_us_per_request(rung.label).text(),
                    "against": base or "—",
                    "change": _said(comparison.change(rung.label, base)) if base else "—",
                }
            )
            if rung.tag != "fastapi":
                previous = rung.label
    return pd.DataFrame(rows).set_index(["service", "rung"])


def _said(change: Estimate) -> str:
    if not change.repeated:
        return f"{change.value:+.0%} (not repeated)"
    if change.excludes(0.0):
        return f"{change.value:+.0%} (95 %: {change.low:+.0%} to {change.high:+.0%})"
    return f"no effect larger than ±{max(abs(change.low), abs(change.high)):.0%}"


def ladder_section(ladder: list[Comparison], min_effect: float) -> list[dict[str, Any]]:
    return [c.record(min_effect) for c in ladder]


def curve_rows(found: list[Search], trickle: list[Step]) -> pd.DataFrame:
    """CPU per request against the offered rate: every step of the searches and the trickle."""
    rows = []
    for step in [*trickle, *(s for f in found for s in f.steps)]:
        cpu = step.cpu_us_per_request()
        rows.append(
            {
                "service": step.target,
                "rate": step.rate,
                "cpu_us_per_request": cpu.value,
                "low": cpu.low,
                "high": cpu.high,
                "verdict": step.verdict(),
            }
        )
    return pd.DataFrame(rows).sort_values(["service", "rate"])


# -- sentences -------------------------------------------------------------------------------


def capacity_sentence(found: list[Search]) -> str:
    ranked = sorted(found, key=lambda s: s.low or 0)
    parts = [f"{s.target} {s.display()} req/s" for s in ranked]
    said = f"Under the budget, holding p95 ≤ 25 ms within this run: {', '.join(parts)}."
    bounded = [s.target for s in found if s.bound() not in ("service",)]
    if bounded:
        said += f" Lower bounds, not the services' figures: {', '.join(bounded)}."
    return said


def floors_sentence(floors: dict[str, dict[str, Any]]) -> str:
    """Each service's CPU per request as a multiple of its framework's floor and of Go's."""
    parts = []
    for service, row in floors.items():
        own = Estimate.from_record(row["multiple_of_floor"])
        go = Estimate.from_record(row.get("multiple_of_go"))
        piece = f"{service} {own.text('{:.2f}', '×')} its no-op floor"
        if service != GO and go.finite:
            piece += f" and {go.text('{:.1f}', '×')} Go's at capacity"
        parts.append(piece)
    return (
        "CPU per request as a multiple of what travels between machines: " + "; ".join(parts) + "."
    )


def fastapi_sentence(ladder: list[Comparison]) -> str:
    """What writing the service as FastAPI path operations costs, per Python service."""
    said = []
    for comparison in ladder:
        fastapi = [a.label for a in comparison.arms if "FastAPI" in a.label]
        if fastapi:
            change = comparison.change(fastapi[0], SERVED)
            said.append(f"{comparison.name}: {_said(change)} CPU per request")
    if not said:
        return "No service was measured as FastAPI path operations."
    return (
        "Writing the prediction routes as FastAPI path operations with pydantic models, "
        "against the lean routes the study serves: " + "; ".join(said) + "."
    )


def machine_table(machine: dict[str, Any], limits: dict[str, Any]) -> pd.Series:
    """What the run measured on, and the budget the kernel enforced (read back)."""
    budget = {
        f"limits of {name}": f"{v.cpu_cores} CPU, {(v.memory_bytes or 0) / MIB:.0f} MiB"
        + ("" if v.enforced else " (NOT enforced)")
        for name, v in limits.items()
        if "." not in name
    }
    load = machine.get("load_average", {})
    shown = {
        "CPU": machine.get("cpu_model"),
        "CPUs usable / logical": f"{machine.get('usable_cpus')} / {machine.get('logical_cpus')}",
        "frequency governor": machine.get("frequency_governor"),
        "virtualised": machine.get("virtualised"),
        "kernel": machine.get("kernel"),
        "cgroup": machine.get("cgroup_version"),
        "load average before (1, 5, 15 min)": ", ".join(f"{v:.2f}" for v in load.values()),
    }
    return pd.Series(shown | budget, name="this run")


def generators_table(cross: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for service, row in cross.items():
        for name in ("vegeta", "k6"):
            rows.append(
                {
                    "service": service,
                    "generator": name,
                    "rate [req/s]": row["rate_rps"],
                    "service CPU [µs/req]": Estimate.from_record(
                        row["service_cpu_us_per_request"][name]
                    ).text(),
                    "generator CPU [µs/req]": Estimate.from_record(
                        row["generator_cpu_us_per_request"][name]
                    ).text(),
                    "p95 seen [ms]": Estimate.from_record(row["p95_ms"][name]).text("{:.1f}"),
                }
            )
    return pd.DataFrame(rows).set_index(["service", "generator"])


def generators_sentence(cross: dict[str, dict[str, Any]]) -> str:
    """Does the service cost the same under either generator? A paired difference each."""
    said = []
    for service, row in cross.items():
        change = Estimate.from_record(row["service_change_under_k6"])
        k6 = Estimate.from_record(row["generator_cpu_us_per_request"]["k6"])
        vegeta = Estimate.from_record(row["generator_cpu_us_per_request"]["vegeta"])
        said.append(
            f"{service}, its CPU per request under k6 against vegeta: {_said(change)} "
            f"(k6 itself spent {k6.value:.0f} µs per request, vegeta {vegeta.value:.0f}, "
            "start-up included)"
        )
    return ("; ".join(said) + ".") if said else "No rate was measured by both generators."

"""The report's answer on one page (notebook 00_summary): per service what it delivers under
the budget and what it costs, each figure with its 95 % interval, and one computed sentence
per finding — read from summary.json, which notebooks 05–09 filled, so the page is re-made
from the run folder alone.

Intervals are *within this run*: they say how far a figure moved while this run measured it,
never that another run or machine would give the same (`make bench --only reproducibility`
compares two runs). A figure measured once says "not repeated". Notebooks 06–09 leave their
findings as computed sentences in summary.json's `findings` (by topic, helpers.analysis.
summary.add_findings); the page says them in the order a reader asks.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from helpers.analysis.billing import money, money_interval
from helpers.intervals import Estimate

MIB = 1024 * 1024
FIRST_PRICES = "x86"


def _estimate(raw: Any) -> Estimate:
    return Estimate.from_record(raw if isinstance(raw, dict) else None)


def _plan(summary: dict[str, Any], service: str) -> dict[str, Any] | None:
    plans = summary.get("cost", {}).get("plans", [])
    targets = sorted({p["target_rps"] for p in plans})
    return next(
        (
            p
            for p in plans
            if p["service"] == service
            and p["prices"] == FIRST_PRICES
            and p["target_rps"] == targets[0]
        ),
        None,
    )


def table(summary: dict[str, Any]) -> pd.DataFrame:
    """A row per service: capacity, CPU per request and its multiples, working set, $ per
    million as billed and per resource-hour, cold start."""
    rows = {}
    for service, found in summary.get("capacity", {}).items():
        floors = summary.get("floors", {}).get(service, {})
        plan = _plan(summary, service)
        cold = summary.get("cold_start", {}).get(service, {})
        capacity = _estimate(found.get("interval"))
        rows[service] = {
            "capacity [req/s]": found.get("display", "not measured"),
            "95 % interval": f"{capacity.low:,.0f}–{capacity.high:,.0f}"
            if capacity.finite
            else "n/a",
            "CPU at capacity [µs/req]": _estimate(found.get("service_cpu_us_per_request")).text(),
            "× its no-op floor": _estimate(floors.get("multiple_of_floor")).text("{:.2f}"),
            "× Go's": _estimate(floors.get("multiple_of_go")).text("{:.2f}"),
            "working set [MiB]": _estimate(found.get("working_set_bytes"))
            .scaled(1 / MIB)
            .text("{:.0f}"),
            "$/million billed": money_interval(
                plan["billed_dollars_per_million"], plan["upper_bound"]
            )
            if plan
            else "not measured",
            "$/million per resource": money_interval(
                plan["per_resource_dollars_per_million"], plan["upper_bound"]
            )
            if plan
            else "not measured",
            "cold start [s]": _estimate(cold.get("total_s")).text("{:.2f}"),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")


def machine(summary: dict[str, Any]) -> str:
    found = summary.get("machine") or {}
    if not found:
        return "The machine was not recorded (notebook 06 did not run)."
    load = found.get("load_average", {})
    return (
        f"Measured on {found.get('cpu_model')} ({found.get('usable_cpus')} CPUs usable, "
        f"{'virtualised' if found.get('virtualised') else 'bare metal'}, governor "
        f"{found.get('frequency_governor')}, kernel {found.get('kernel')}, cgroup "
        f"{found.get('cgroup_version')}), load average {load.get('1m', math.nan):.2f} before "
        "the capacity runs. Absolute CPU per request differs 2–3× between machines of one "
        "kind; the multiples of a service's floor and of Go's are what should travel."
    )


def _capacity(summary: dict[str, Any]) -> str | None:
    found = summary.get("capacity", {})
    if not found:
        return None
    ranked = sorted(found.items(), key=lambda kv: kv[1].get("rate_rps") or 0)
    parts = []
    for service, row in ranked:
        interval = _estimate(row.get("interval"))
        span = f" (95 %: {interval.low:,.0f}–{interval.high:,.0f})" if interval.finite else ""
        parts.append(f"{service} {row['display']} req/s{span}")
    return "Capacity at p95 ≤ 25 ms under 0.5 CPU / 128 MiB: " + ", ".join(parts) + "."


def _floors(summary: dict[str, Any]) -> str | None:
    floors = summary.get("floors", {})
    if not floors:
        return None
    parts = []
    for service, row in floors.items():
        piece = f"{service} {_estimate(row.get('multiple_of_floor')).text('{:.2f}', '×')}"
        go = _estimate(row.get("multiple_of_go"))
        if go.finite and service != "go-api-onnx":
            piece += f" its floor, {go.text('{:.1f}', '×')} Go's"
        else:
            piece += " its floor"
        parts.append(piece)
    return (
        "CPU per request, as multiples that should travel between machines: "
        + "; ".join(parts)
        + "."
    )


def _money(summary: dict[str, Any]) -> str | None:
    plans = [p for p in summary.get("cost", {}).get("plans", []) if p["prices"] == FIRST_PRICES]
    if not plans:
        return None
    target = min(p["target_rps"] for p in plans)
    chosen = sorted(
        (p for p in plans if p["target_rps"] == target),
        key=lambda p: _estimate(p["billed_dollars_per_million"]).value,
    )

    def said(plan: dict[str, Any], key: str) -> str:
        return money(_estimate(plan[key]).value, plan["upper_bound"])

    parts = [
        f"{p['service']} {said(p, 'billed_dollars_per_million')} billed "
        f"({said(p, 'per_resource_dollars_per_million')} per resource-hour)"
        for p in chosen
    ]
    return f"A million predictions at {target:,.0f} req/s: " + "; ".join(parts) + "."


TOPICS = ("fastapi", "generators", "batching", "scaling", "cold_start", "why", "zoo")


def sentences(summary: dict[str, Any], exits: list[Any] = ()) -> list[str]:
    """The findings in the order a reader asks them; each computed from summary.json."""
    said = []
    if not summary.get("limits_enforced", True):
        said.append("⚠️ Limits were NOT enforced: these numbers are not under the study's budget.")
    for event in exits:
        said.append(f"⚠️ {event.sentence()}: figures after that moment are not measured.")
    said.append(machine(summary))
    said += [s for s in (_capacity(summary), _floors(summary), _money(summary)) if s]
    findings = summary.get("findings", {})  # each notebook's computed sentences, by topic
    for topic in TOPICS:
        found = findings.get(topic)
        said += found if isinstance(found, list) else [found] if found else []
    said.append(
        "Every interval above is within this run (bootstrapped over its own windows and "
        "rounds); whether another run agrees is `make bench --only reproducibility`'s question."
    )
    return said

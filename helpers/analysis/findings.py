"""Sentences computed from numbers: what notebook 06 and the headline say, never typed.

Each function takes the tables the notebooks already show and returns one sentence (or a few)
whose every number, comparison and verdict comes from them — a re-run with other numbers says
something else. Bounds stay bounds: a generator-bound capacity is "≥ X", a ratio built on it
"≥ N×", a dollar figure built on it "≤ $y".
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from helpers.analysis.cost import money
from helpers.load.capacity import ServiceCapacity, ratio

SPREAD_LIMIT = 0.15  # the headline's figures must repeat within ±15 %
LADDER_LIMIT = 1.5  # a service's full cost within 1.5× of its bare framework's


def capacity(results: list[ServiceCapacity]) -> str:
    ranked = sorted(results, key=lambda r: r.capacity_rps or 0)
    parts = [f"{r.service} {r.display} req/s" for r in ranked]
    ratios = [
        f"{top.service} / {bottom.service} = {ratio(results, top.service, bottom.service)}"
        for bottom, top in itertools.pairwise(ranked)
    ]
    return f"Under 0.5 CPU / 128 MiB, holding p95 ≤ 25 ms: {', '.join(parts)}; {'; '.join(ratios)}."


def generators(crosscheck: pd.DataFrame, tolerance: float = 0.10) -> str:
    """vegeta vs k6 at one rate per service: do they see the same service CPU per request?"""
    said = []
    medians = crosscheck.groupby(["service", "generator"], sort=False).median(numeric_only=True)
    for service, by in medians.groupby(level="service", sort=False):
        by = by.droplevel("service")
        if not {"vegeta", "k6"} <= set(by.index):
            continue
        v, k = (
            by.loc["vegeta", "service_cpu_us_per_request"],
            by.loc["k6", "service_cpu_us_per_request"],
        )
        gap = abs(v - k) / min(v, k) if min(v, k) > 0 else math.nan
        verdict = "agree" if gap <= tolerance else "DISAGREE"
        said.append(
            f"{service} at {by.loc['vegeta', 'rate']:.0f} req/s: vegeta {v:.0f} µs, k6 {k:.0f} µs "
            f"per request ({gap:.0%} apart: {verdict} within {tolerance:.0%}); the generators "
            f"spent {by.loc['vegeta', 'generator_cpu_us_per_request']:.0f} vs "
            f"{by.loc['k6', 'generator_cpu_us_per_request']:.0f} µs each and saw a p95 of "
            f"{by.loc['vegeta', 'p95_ms']:.1f} vs {by.loc['k6', 'p95_ms']:.1f} ms"
        )
    return "; ".join(said) + "." if said else "No rate was measured by both generators."


def curve(frame: pd.DataFrame) -> str:
    said = []
    for service, group in frame.groupby("service", sort=False):
        group = group.sort_values("rate")
        low, high = group.iloc[0], group.iloc[-1]
        factor = low["service_cpu_us_per_request"] / high["service_cpu_us_per_request"]
        said.append(
            f"{service} {low['service_cpu_us_per_request']:.0f} µs at {low['rate']:.0f} req/s vs "
            f"{high['service_cpu_us_per_request']:.0f} µs at {high['rate']:.0f} req/s "
            f"({factor:.1f}×)"
        )
    return (
        "CPU per request falls as load rises — "
        + "; ".join(said)
        + ": a light-load figure measures wake-ups, not the cost of serving."
    )


def ladder(frame: pd.DataFrame) -> str:
    said = []
    for service, group in frame.groupby("service", sort=False):
        values = group.set_index("rung")["cpu_us_per_request"]
        rungs = list(values.index)
        base, full = values.iloc[0], values.iloc[-1]
        if not (math.isfinite(base) and math.isfinite(full)):
            missing = [r for r in rungs if not math.isfinite(values[r])]
            said.append(f"{service}: not measured on {', '.join(missing)}")
            continue
        steps = ", ".join(f"{b} +{values[b] - values[a]:.0f}" for a, b in itertools.pairwise(rungs))
        factor = full / base
        verdict = "within" if factor <= LADDER_LIMIT else "BEYOND"
        said.append(
            f"{service}: framework {base:.0f} µs, {steps}; full / framework = {factor:.2f}× "
            f"({verdict} {LADDER_LIMIT:g}×)"
        )
    return "; ".join(said) + "."


def dollars(plans: pd.DataFrame) -> str:
    said = []
    for target, group in plans.groupby("target_rps"):
        group = group.sort_values("dollars_per_million")
        cheapest = group.iloc[0]["dollars_per_million"]
        parts = [
            f"{row.service} {money(row.dollars_per_million, row.upper_bound)} "
            f"({row.instances} instances)"
            for row in group.itertuples()
        ]
        shares = " : ".join(f"{v / cheapest:.1f}" for v in group["dollars_per_million"][::-1])
        said.append(f"at {target:,.0f} req/s {', '.join(parts)} per million — {shares}")
    return "; ".join(said) + "."


def unstable(figures: dict[str, float]) -> str:
    """Names every figure whose spread over repeats is wider than ±15 %, or says none is."""
    wide = {name: s for name, s in figures.items() if math.isfinite(s) and s > 2 * SPREAD_LIMIT}
    if not wide:
        return f"Every headline figure repeated within ±{SPREAD_LIMIT:.0%}."
    listed = ", ".join(f"{name} (±{s / 2:.0%})" for name, s in wide.items())
    return f"Spread wider than ±{SPREAD_LIMIT:.0%} over repeats — read these with care: {listed}."


def client_latency(per_service: pd.DataFrame) -> str:
    """What k6's client p95 can and cannot say. The client figure adds everything outside the
    handler — k6's own scheduling on a busy 2-core host, the socket, the event loop — so a gap
    between two services' client p95 is only a finding when it is larger than what k6 added
    to either (its client p95 minus the service's own p95 over the same phase)."""
    rows = per_service[["client_p95_ms", "server_p95_ms"]].dropna()
    if len(rows) < 2:
        return "Too few services with both a client and a server p95 to compare."
    added = (rows["client_p95_ms"] - rows["server_p95_ms"]).clip(lower=0)
    said = [
        f"{s} client {r.client_p95_ms:.2f} ms vs server {r.server_p95_ms:.2f} ms "
        f"(+{added[s]:.2f} outside the handler)"
        for s, r in rows.iterrows()
    ]
    ranked = rows["client_p95_ms"].sort_values()
    verdicts = []
    for (a, pa), (b, pb) in itertools.pairwise(ranked.items()):
        floor = max(added[a], added[b])
        if pb - pa > floor:
            verdicts.append(f"{a} is faster than {b} as the client sees it ({pb - pa:.2f} ms)")
        else:
            verdicts.append(
                f"{a} and {b} cannot be told apart from the client ({pb - pa:.2f} ms apart, "
                f"less than the {floor:.2f} ms k6 adds)"
            )
    return "; ".join(said) + ". " + "; ".join(verdicts) + "."

"""The post's observations, explained from the load test's own run folder (notebook 08): how
far behind the planned rate each service fell, its p95, how the coupled loop ties the three
together (its memory against the 128 MiB limit: helpers.analysis.memory_observations), and
whether each end held the objective in the paired comparisons.
Pure functions of tables (helpers.analysis.metrics), so every sentence is computed and
tested on made-up numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from helpers.load import stepping
from helpers.load.ablation_plan import PUBLISHED, TUNED
from helpers.load.interleave import Comparison

MIB = 1024 * 1024
ENDS = (TUNED, PUBLISHED)
STOPPED = {  # why a capacity is only a lower bound (helpers.load.capacity's bounds)
    "time budget": "the search ran out of its time budget",
    "search limit": "the search reached its highest rate",
    "generator": "the generator, not the service, was the limit",
}
BEHIND_TOLERANCE = 0.10
MIN_PLANNED_PER_WINDOW = (
    50  # requests: one more or less is 2 %  # served below 90 % of the planned rate = fallen behind
)


# -- the post's observations -----------------------------------------------------------------


def shortfall(timeseries: pd.DataFrame, window_s: float) -> dict[str, float]:
    """Per service, the largest share of the planned rate not served at one moment (served
    vs planned RPM over the same window), after the first window of the phase and where a
    window was planned to hold at least MIN_PLANNED_PER_WINDOW requests. The planned
    line is interpolated at the served line's times (Prometheus aligns its steps to the
    clock, the plan to the phase's start)."""
    found = {}
    served = timeseries[timeseries["metric"] == "server_requests_per_minute"]
    planned = timeseries[timeseries["metric"] == "planned_requests_per_minute"]
    for service, mine in planned.groupby("service"):
        mine = mine.sort_values("elapsed_s")
        got = served[served["service"] == service].sort_values("elapsed_s")
        got = got[(got["elapsed_s"] >= window_s) & (got["elapsed_s"] <= mine["elapsed_s"].max())]
        want = np.interp(got["elapsed_s"], mine["elapsed_s"], mine["value"])
        # A rate over a window counts whole requests: at 100/min a 5 s window holds 8 or 9,
        # a 10 % "shortfall" by quantisation alone. Judged only where the window was planned
        # to hold enough requests for one more or less not to matter.
        keep = want * window_s / 60 >= MIN_PLANNED_PER_WINDOW
        found[service] = (
            float(((want[keep] - got["value"].to_numpy()[keep]) / want[keep]).max())
            if keep.any()
            else math.nan
        )
    return found


def ends_at(comparisons: Iterable[Comparison]) -> dict[str, dict[str, dict[str, Any]]]:
    """end → service → whether the end held the objective at its comparison's constant rate
    (its windows judged like a step: helpers.load.stepping), with the mean p95 and errors."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for comparison in comparisons:
        for end in ENDS:
            taken = [r[end] for r in comparison.complete_rounds() if end in r]
            if not taken:
                continue
            step = stepping.Step(taken[0].target, comparison.rate, windows=taken)
            found.setdefault(end, {})[comparison.name] = {
                "rate_rps": comparison.rate,
                "passed": step.point_passed(),
                "p95_ms": step.p95_ms().value,
                "error_rate": step.error_rate(),
            }
    return found


def rpm_observation(
    per_service: Mapping[str, pd.DataFrame],
    shortfalls: Mapping[str, Mapping[str, float]],
    capacities: Mapping[str, Mapping[str, Mapping[str, Any]]],
    seed_rps: int,
    at_rate: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> tuple[dict[str, Any], str]:
    """(a) RPM is the offered rate until a service falls behind: which did in the load test,
    whether each end configuration held the objective at its comparison's constant rate
    (`ends_at`), and where its capacity stands against the seed's peak."""
    numbers: dict[str, Any] = {"modes": {}, "capacity_vs_seed_peak": {}, "at_rate": {}}
    said = []
    for mode, table in per_service.items():
        behind = {s: v for s, v in shortfalls.get(mode, {}).items() if v > BEHIND_TOLERANCE}
        numbers["modes"][mode] = {
            service: {
                "requests": int(row["requests"]),
                "planned_requests": int(row["planned_requests"]),
                "reached_ratio": float(row["reached_ratio"]),
                "max_shortfall": shortfalls.get(mode, {}).get(service, math.nan),
                "fell_behind": service in behind,
            }
            for service, row in table.iterrows()
        }
        reached = ", ".join(
            f"{s} {100 * row['reached_ratio']:.0f} %" for s, row in table.iterrows()
        )
        worst = ", ".join(
            f"{s} {100 * v:.0f} %" for s, v in shortfalls.get(mode, {}).items() if math.isfinite(v)
        )
        if behind:
            verdict = (
                f"{', '.join(behind)} fell behind (served < {1 - BEHIND_TOLERANCE:.0%} of the "
                "planned rate at some moment): there its RPM line is its capacity, not the offer"
            )
        else:
            verdict = (
                "no service fell behind, so the RPM panel drew the offered rate for every "
                "service and its differences are sampling, not capacity"
            )
        said.append(
            f"{mode.capitalize()}: served/planned {reached}; the largest shortfall at one "
            f"moment (rate windows planned to hold ≥ {MIN_PLANNED_PER_WINDOW} requests) "
            f"{worst or 'n/a'} — {verdict}."
        )
    for end, by_service in (at_rate or {}).items():
        numbers["at_rate"][end] = dict(by_service)
        held = [f"{s} ({v['rate_rps']:,} req/s)" for s, v in by_service.items() if v["passed"]]
        missed = [
            f"{s} ({v['rate_rps']:,} req/s: p95 {v['p95_ms']:.1f} ms, errors "
            f"{pct(v['error_rate'], 2)})"
            for s, v in by_service.items()
            if not v["passed"]
        ]
        text = f"At the comparisons' constant rates the {end} configuration held the objective for "
        text += _and(held) if held else "no service"
        if missed:
            text += f"; not for {_and(missed)}"
        said.append(text + ".")
    for end, by_service in capacities.items():
        verdicts = []
        for service, record in by_service.items():
            rate = record.get("rate_rps")
            if rate is not None and rate >= seed_rps:
                holds, verdict = True, "keeps up"
            elif record.get("bound") in ("service", "none passed"):
                holds, verdict = False, "falls behind"
            else:  # a lower bound below the seed's peak: the search stopped short
                holds = None
                verdict = "undecided: " + STOPPED.get(record.get("bound"), "the search stopped")
            numbers["capacity_vs_seed_peak"].setdefault(end, {})[service] = {
                "capacity_rps": rate,
                "display": record.get("display"),
                "bound": record.get("bound"),
                "keeps_up_at_seed_peak": holds,
            }
            verdicts.append(f"{service} {record.get('display')} req/s ({verdict})")
        said.append(
            f"Capacity in the {end} configuration against the seed's peak ({seed_rps} req/s): "
            + ", ".join(verdicts)
            + "."
        )
    return numbers, " ".join(said)


def pct(share: float, digits: int = 0) -> str:
    """A share as a percentage ('n/a' when unknown)."""
    return f"{100 * share:.{digits}f} %" if math.isfinite(share) else "n/a"


def _and(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def p95_figures(
    seed_buckets: Mapping[str, float],
    fine_buckets: Mapping[str, float],
    client: Mapping[str, float],
    series_5s: pd.DataFrame,
) -> pd.DataFrame:
    """Per service, the phase's p95 three ways (ms): from the post's buckets, from the study's
    buckets, and k6's exact one; and the share of 5 s points whose post-bucket p95 lies
    inside the first bucket (< 5 ms), where it is a straight-line interpolation."""
    rows = {}
    seeded = series_5s[series_5s["metric"] == "server_latency_p95_seconds_seed_buckets"]
    for service in client:
        points = seeded[seeded["service"] == service]["value"]
        rows[service] = {
            "p95_post_buckets_ms": 1000 * seed_buckets.get(service, math.nan),
            "p95_study_buckets_ms": 1000 * fine_buckets.get(service, math.nan),
            "p95_k6_exact_ms": client[service],
            "points_inside_first_bucket": float((points < 0.005).mean())
            if not points.empty
            else math.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")


def p95_sentence(figures: pd.DataFrame, mode: str) -> str:
    if figures.empty:
        return f"{mode}: no latency series."
    parts = [
        f"{s} {r['p95_post_buckets_ms']:.2f} / {r['p95_study_buckets_ms']:.2f} / "
        f"{r['p95_k6_exact_ms']:.2f} ms ({pct(r['points_inside_first_bucket'])} of the 5 s "
        "points inside the first bucket)"
        for s, r in figures.iterrows()
    ]
    text = (
        f"{mode.capitalize()}, p95 over the phase from the post's buckets / the study's / k6 "
        f"exactly: {'; '.join(parts)}."
    )
    inside = figures[figures["p95_post_buckets_ms"] < 5.0]
    if len(inside) >= 2:
        post = inside["p95_post_buckets_ms"]
        exact = inside["p95_k6_exact_ms"]
        text += (
            f" {_and(inside.index)} all read below 5 ms in the post's layout, "
            f"{post.min():.2f}–{post.max():.2f} ms ({post.max() / post.min():.2f}× apart), an "
            f"interpolation within one bucket; k6 measured {exact.min():.2f}–{exact.max():.2f} "
            f"ms ({exact.max() / exact.min():.2f}× apart)."
        )
    return text


def coupling_sentence(per_service: Mapping[str, pd.DataFrame]) -> tuple[dict[str, Any], str]:
    """Coupled vs isolated, as what the coupling hides: requests equal by construction, and
    what the shared CPU adds to latency and CPU."""
    if not {"coupled", "isolated"} <= set(per_service):
        ran = ", ".join(per_service) or "none"
        return {}, f"Both modes are needed to compare them; this run has: {ran}."
    coupled, isolated = per_service["coupled"], per_service["isolated"]
    numbers: dict[str, Any] = {}
    for service in coupled.index.intersection(isolated.index):
        c, i = coupled.loc[service], isolated.loc[service]
        numbers[service] = {
            key: {"coupled": float(c[key]), "isolated": float(i[key])}
            for key in ("requests", "client_p95_ms", "server_p95_ms", "mean_cpu_cores",
                        "throttled_ratio")
            if key in c and key in i
        }  # fmt: skip
    requests = coupled["requests"].astype(float)
    spread = (requests.max() - requests.min()) / requests.max() if requests.max() else math.nan
    same = spread <= 0.01
    said = [
        "Coupled, one iteration posts to the three services in turn, so they got "
        + ", ".join(f"{s} {int(v)}" for s, v in requests.items())
        + " requests"
        + (
            f" — {'all equal' if spread == 0 else f'equal within {pct(spread, 1)}'}: the loop "
            "makes them equal, whatever each could serve, so a coupled RPM cannot rank them"
            if same
            else f" — {pct(spread, 1)} apart: some iterations did not reach every service"
        )
        + "."
    ]
    ratios = []
    for service, figures in numbers.items():
        p95 = figures.get("client_p95_ms", {})
        if p95 and p95["isolated"]:
            ratios.append(
                f"{service} {p95['coupled']:.2f} vs {p95['isolated']:.2f} ms "
                f"({p95['coupled'] / p95['isolated']:.2f}×)"
            )
    if ratios:
        said.append(
            "Sharing the host, the client's p95 coupled vs isolated: " + "; ".join(ratios) + "."
        )
    cpu = [
        f"{s} {f['mean_cpu_cores']['coupled']:.2f} vs {f['mean_cpu_cores']['isolated']:.2f}"
        for s, f in numbers.items()
        if "mean_cpu_cores" in f
    ]
    if cpu:
        said.append("Mean CPU cores coupled vs isolated: " + "; ".join(cpu) + ".")
    return numbers, " ".join(said)

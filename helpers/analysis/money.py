"""Notebook 07's money: what a million predictions cost per service, priced per resource-hour
and as billed (helpers.analysis.billing), on x86 and ARM price lists — at the study's budget,
for the cheapest configuration the scaling measured, and with client batching.

The headline uses the billed figure at the budget (0.5 vCPU: a 0.5 vCPU / 1 GB task). Every
dollar figure carries the interval of the capacity it rests on; one resting on a lower-bound
capacity is an upper bound ("≤ $…").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis import billing
from helpers.analysis.billing import Prices, money_interval
from helpers.analysis.plots import COLOURS, save
from helpers.intervals import Estimate
from helpers.load.batching import BatchPoint

BUDGET_CPU, BUDGET_MEMORY = 0.5, 128 * 1024 * 1024


def budget_plans(
    capacity: dict[str, dict[str, Any]],
    targets: list[float],
    prices: list[Prices],
    headroom: float,
) -> list[dict[str, Any]]:
    """Each service at the budget (notebook 06's capacity), every target and price list."""
    sizes = billing.task_sizes()
    plans = []
    for service, found in capacity.items():
        estimate = Estimate.from_record(found.get("interval"))
        if not math.isfinite(estimate.value):
            continue
        lower_bound = found.get("bound") != "service"
        for price in prices:
            for target in targets:
                plans.append(
                    billing.plan(
                        service,
                        estimate,
                        lower_bound,
                        BUDGET_CPU,
                        BUDGET_MEMORY,
                        target,
                        price,
                        headroom,
                        sizes,
                    )
                    | {"configuration": "budget (0.5 CPU, 128 MiB)"}
                )
    return plans


def scaling_plans(
    rows: list[dict[str, Any]], target: float, prices: Prices, headroom: float
) -> list[dict[str, Any]]:
    """Every measured configuration (CPUs × workers) priced as billed for one target."""
    sizes = billing.task_sizes()
    plans = []
    for row in rows:
        estimate = Estimate.from_record(row["capacity"])
        if not math.isfinite(estimate.value):
            continue
        plan = billing.plan(
            row["service"], estimate, row["bound"] != "service", row["cpus"],
            row["memory_bytes"], target, prices, headroom, sizes,
        )  # fmt: skip
        plans.append(plan | {"configuration": f"{row['cpus']:g} CPU × {row['workers']} worker(s)"})
    return plans


def cheapest(plans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per service, the configuration with the lowest billed $ per million."""
    best: dict[str, dict[str, Any]] = {}
    for plan in plans:
        value = Estimate.from_record(plan["billed_dollars_per_million"]).value
        current = best.get(plan["service"])
        if (
            current is None
            or value < Estimate.from_record(current["billed_dollars_per_million"]).value
        ):
            best[plan["service"]] = plan
    return best


def batching_dollars(
    points: list[BatchPoint], prices: Prices, headroom: float
) -> list[dict[str, Any]]:
    """$ per million predictions at each batch size: the task's hourly price over what the
    quota can predict at the measured CPU per prediction (a CPU-bound estimate — the latency
    objective is not held here; the p95 column says what a batch costs in latency)."""
    task = billing.smallest_task(BUDGET_CPU, BUDGET_MEMORY, prices, billing.task_sizes())
    hourly = task.hourly(prices)
    rows = []
    for point in points:
        per_prediction = point.cpu_us_per_prediction()

        def dollars(cpu_us: float) -> float:
            predictions_per_s = BUDGET_CPU * 1e6 / cpu_us * (1 - headroom)
            return hourly / (predictions_per_s * 3600) * 1e6 if cpu_us > 0 else math.nan

        rows.append(
            {
                "service": point.service,
                "batch": point.batch,
                "billed_dollars_per_million": per_prediction.mapped(dollars).record(),
                "p95_ms": point.step.p95_ms().record(),
            }
        )
    return rows


def table(plans: list[dict[str, Any]]) -> pd.DataFrame:
    """Plans in reading units: tasks, the task billed, $ per million both ways."""
    rows = []
    for plan in plans:
        tasks = Estimate.from_record(plan["instances"])
        bound = plan["upper_bound"]
        rows.append(
            {
                "service": plan["service"],
                "prices": plan["prices"],
                "target [req/s]": f"{plan['target_rps']:,.0f}",
                "configuration": plan["configuration"],
                "task billed": f"{plan['task']['vcpu']:g} vCPU / {plan['task']['memory_gb']:g} GB",
                "tasks": ("≤ " if bound else "") + f"{tasks.value:.0f}",
                "$/million billed": money_interval(plan["billed_dollars_per_million"], bound),
                "$/million per resource": money_interval(
                    plan["per_resource_dollars_per_million"], bound
                ),
            }
        )
    return pd.DataFrame(rows).set_index(["prices", "target [req/s]", "service"]).sort_index()


def figure(plans: list[dict[str, Any]], path: Path | None = None) -> plt.Figure:
    """$ per million per service and target: billed (solid) beside per resource (light)."""
    frame = pd.DataFrame(plans)
    frame = frame[frame["prices"] == frame["prices"].iloc[0]]
    targets = sorted(frame["target_rps"].unique())
    services = list(dict.fromkeys(frame["service"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        rows = frame[frame["target_rps"] == target].set_index("service").reindex(services)
        x = np.arange(len(services))
        for offset, key, alpha, label in (
            (-0.2, "billed_dollars_per_million", 1.0, "as billed"),
            (0.2, "per_resource_dollars_per_million", 0.4, "per resource-hour"),
        ):
            values = [Estimate.from_record(r) for r in rows[key]]
            bars = ax.bar(
                x + offset,
                [v.value for v in values],
                0.4,
                yerr=[[v.value - v.low for v in values], [v.high - v.value for v in values]],
                color=[COLOURS.get(s) for s in services],
                alpha=alpha,
                capsize=2,
                label=label,
            )
            for bar, bound in zip(bars, rows["upper_bound"], strict=True):
                if bound:
                    bar.set_hatch("//")
        ax.set_xticks(x, services, fontsize=8)
        ax.set_ylabel("$ per million predictions")
        ax.set_title(f"{target:,.0f} req/s ({frame['prices'].iloc[0]} prices)")
        ax.legend(fontsize=8)
    fig.suptitle("What a million predictions cost: as billed vs per resource-hour")
    fig.tight_layout()
    save(fig, path)
    return fig


def sentence(plans: list[dict[str, Any]], target: float, price_name: str) -> str:
    chosen = [p for p in plans if p["target_rps"] == target and p["prices"] == price_name]
    chosen.sort(key=lambda p: Estimate.from_record(p["billed_dollars_per_million"]).value)

    def said(plan: dict[str, Any], key: str) -> str:
        return billing.money(Estimate.from_record(plan[key]).value, plan["upper_bound"])

    parts = [
        f"{p['service']} {said(p, 'billed_dollars_per_million')} (per resource-hour "
        f"{said(p, 'per_resource_dollars_per_million')})"
        for p in chosen
    ]
    return (
        f"A million predictions at {target:,.0f} req/s, billed as {price_name} Fargate tasks: "
        + "; ".join(parts)
        + "."
    )

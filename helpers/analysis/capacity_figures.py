"""The figures of notebook 06: every capacity step against the objective, CPU per request
against load, and where a request's CPU goes (the ladder). Error bars are 95 % intervals over
the windows (or rounds) of this run; one colour per service (plots.COLOURS); PNGs saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis.capacity_report import ladder_table
from helpers.analysis.plots import COLOURS, save
from helpers.load.interleave import Comparison
from helpers.load.search import Search
from helpers.load.stepping import P95_MS

SEED_PEAK_RPS = 16000 / 60  # the seed's ramp tops out at 16 000 requests per minute
MARKERS = {"pass": "o", "undecided": "s", "fail": "x"}


def _colour(name: str) -> str | None:
    return COLOURS.get(name.split(".")[0])


def capacity_steps(found: list[Search], path: Path | None = None) -> plt.Figure:
    """Per service: each step's p95 with its interval (left axis) and the service's CPU
    (right axis, against its quota), marked by its verdict."""
    figure, axes = plt.subplots(1, len(found), figsize=(5 * len(found), 4), squeeze=False)
    handles: list = []
    for ax, result in zip(axes[0], found, strict=True):
        colour = _colour(result.target)
        for verdict, marker in MARKERS.items():
            steps = [s for s in result.steps if s.verdict() == verdict]
            if not steps:
                continue
            p95 = [s.p95_ms() for s in steps]
            ax.errorbar(
                [s.rate for s in steps],
                [e.value for e in p95],
                yerr=[[e.value - e.low for e in p95], [e.high - e.value for e in p95]],
                fmt=marker,
                color=colour,
                capsize=2,
                label=f"p95, {verdict}",
            )
        ax.axhline(P95_MS, color="black", ls="--", lw=1, label=f"objective p95 {P95_MS:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate [req/s]")
        ax.set_ylabel("p95 latency [ms]")
        cpu = ax.twinx()
        cpu.plot(
            [s.rate for s in result.steps],
            [s.service_cores() for s in result.steps],
            ".",
            color="grey",
            label="service CPU",
        )
        if result.cpu_limit:
            cpu.axhline(result.cpu_limit, color="grey", ls=":", lw=1, label="CPU quota")
        cpu.set_ylabel("service CPU [cores]")
        cpu.set_ylim(bottom=0)
        ax.set_title(f"{result.target}\ncapacity {result.display()} req/s", fontsize=10)
        found_handles = ax.get_legend_handles_labels()[0] + cpu.get_legend_handles_labels()[0]
        handles = found_handles if len(found_handles) > len(handles) else handles
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle("Capacity search: every step with its p95's 95 % interval, and the CPU used")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    save(figure, path)
    return figure


def cpu_curve(curve: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    """CPU µs per request against the offered rate, one line per service (log-log), with the
    seed's peak marked: the seed's whole ramp sits left of that line."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    ax.axvline(SEED_PEAK_RPS, color="black", ls=":", lw=1, label="the seed's peak (267 req/s)")
    for service, group in curve.groupby("service", sort=False):
        group = group.groupby("rate", as_index=False).median(numeric_only=True)
        ax.errorbar(
            group["rate"],
            group["cpu_us_per_request"],
            yerr=[
                (group["cpu_us_per_request"] - group["low"]).clip(lower=0),
                (group["high"] - group["cpu_us_per_request"]).clip(lower=0),
            ],
            fmt="o-",
            color=_colour(str(service)),
            capsize=2,
            label=service,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate [req/s]")
    ax.set_ylabel("service CPU per request [µs]")
    ax.set_title("CPU per request against load: light load pays for wake-ups, not work")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    figure.tight_layout()
    save(figure, path)
    return figure


def ladder(comparisons: list[Comparison], path: Path | None = None) -> plt.Figure:
    """Per service, each rung's CPU per request with its interval, rungs side by side."""
    table = ladder_table(comparisons).reset_index()
    rungs = list(dict.fromkeys(table["rung"]))
    figure, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(rungs)
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(rungs)))
    for i, (rung, colour) in enumerate(zip(rungs, colours, strict=True)):
        values, lows, highs = [], [], []
        for comparison in comparisons:
            labels = {a.label for a in comparison.arms}
            estimate = comparison.cpu_us_per_request(rung) if rung in labels else None
            values.append(estimate.value if estimate else np.nan)
            lows.append(estimate.value - estimate.low if estimate else 0)
            highs.append(estimate.high - estimate.value if estimate else 0)
        x = np.arange(len(comparisons)) + (i - (len(rungs) - 1) / 2) * width
        ax.bar(x, values, width, yerr=[lows, highs], color=colour, capsize=2, label=rung)
    ax.set_xticks(np.arange(len(comparisons)), [f"{c.name}\n{c.rate} req/s" for c in comparisons])
    ax.set_ylabel("service CPU per request [µs]")
    ax.set_title("Where a request's CPU goes: each rung an instance, measured in alternation")
    ax.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure

"""The figures of notebook 06: capacity steps, CPU per request against load, the overhead
ladder, and dollars per million. Each takes plain tables (capacity results, step rows), draws
one colour per service (plots.COLOURS), labels axes with units, and saves a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from helpers.analysis.plots import COLOURS, save
from helpers.load.capacity import ServiceCapacity
from helpers.load.steps import P95_MS


def capacity_steps(
    results: list[ServiceCapacity], cpu_limit: float | None, path: Path | None = None
) -> plt.Figure:
    """Per service: p95 (left) and service CPU (right) at every rate the search tried."""
    figure, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        frame = pd.DataFrame([vars(s) for s in result.steps])
        if frame.empty:
            ax.set_title(f"{result.service}: no steps")
            continue
        colour = COLOURS.get(result.service)
        passed = frame[frame["passed"]]
        failed = frame[~frame["passed"]]
        ax.scatter(passed["rate"], passed["p95_ms"], color=colour, marker="o", label="p95, passed")
        ax.scatter(failed["rate"], failed["p95_ms"], color=colour, marker="x", label="p95, failed")
        ax.axhline(P95_MS, color="black", ls="--", lw=1, label=f"objective p95 {P95_MS:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate [req/s]")
        ax.set_ylabel("p95 latency [ms]")
        cpu = ax.twinx()
        cpu.plot(frame["rate"], frame["service_cpu_cores"], ".", color="grey", label="service CPU")
        if cpu_limit:
            cpu.axhline(cpu_limit, color="grey", ls=":", lw=1, label=f"CPU quota {cpu_limit:g}")
        cpu.set_ylabel("service CPU [cores]")
        cpu.set_ylim(bottom=0)
        ax.set_title(f"{result.service}\ncapacity {result.display} req/s", fontsize=10)
        handles = ax.get_legend_handles_labels()[0] + cpu.get_legend_handles_labels()[0]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    figure.suptitle("Capacity search: every step, against the objective and the CPU quota")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    save(figure, path)
    return figure


SEED_PEAK_RPS = 16000 / 60  # the seed's ramp tops out at 16 000 requests per minute


def cpu_curve(curve: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    """CPU µs per request against the offered rate, one line per service (log-log), with the
    seed's peak rate marked: the seed's whole ramp sits left of that line."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    ax.axvline(SEED_PEAK_RPS, color="black", ls=":", lw=1, label="the seed's peak (267 req/s)")
    for service, group in curve.groupby("service", sort=False):
        group = group.sort_values("rate")
        ax.plot(
            group["rate"],
            group["service_cpu_us_per_request"],
            "o-",
            color=COLOURS.get(service),
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


def ladder(frame: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    """A stacked bar per service: what each rung adds to the CPU per request."""
    rungs = list(dict.fromkeys(frame["rung"]))
    services = list(dict.fromkeys(frame["service"]))
    table = frame.pivot(index="service", columns="rung", values="cpu_us_per_request")
    table = table.reindex(index=services, columns=rungs)
    increments = table.diff(axis=1).fillna(table)
    figure, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(services))
    colours = plt.get_cmap("viridis")(np.linspace(0.15, 0.9, len(rungs)))
    for rung, colour in zip(rungs, colours, strict=True):
        values = increments[rung].to_numpy(dtype=float)
        drawn = np.nan_to_num(values)
        ax.bar(services, drawn, bottom=bottom, color=colour, label=rung)
        bottom += drawn
    for x, total in enumerate(table[rungs[-1]].to_numpy(dtype=float)):
        if np.isfinite(total):
            ax.annotate(f"{total:.0f} µs", (x, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("service CPU per request [µs]")
    ax.set_title("Where a request's CPU goes (same rate on every rung)")
    ax.legend(title="rung (cumulative)", fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure


def dollars(plans: pd.DataFrame, path: Path | None = None) -> plt.Figure:
    """$ per million predictions per service, one group of bars per target rate."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    targets = sorted(plans["target_rps"].unique())
    services = list(dict.fromkeys(plans["service"]))
    width = 0.8 / len(services)
    for i, service in enumerate(services):
        rows = plans[plans["service"] == service].set_index("target_rps").reindex(targets)
        x = np.arange(len(targets)) + (i - (len(services) - 1) / 2) * width
        bars = ax.bar(x, rows["dollars_per_million"], width, color=COLOURS.get(service),
                      label=service)  # fmt: skip
        for bar, bound in zip(bars, rows["upper_bound"], strict=True):
            if bound:
                bar.set_hatch("//")
    ax.set_xticks(np.arange(len(targets)), [f"{t:,.0f} req/s" for t in targets])
    ax.set_xlabel("target rate of the fleet")
    ax.set_ylabel("$ per million predictions")
    ax.set_title("What a million predictions cost (hatched: at most, capacity is a lower bound)")
    ax.legend()
    figure.tight_layout()
    save(figure, path)
    return figure

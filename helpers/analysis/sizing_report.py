"""What notebook 07 found — batching, scaling with CPU, cold start — as tables, figures,
summary.json sections and computed sentences. Intervals are within this run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from helpers.analysis.plots import COLOURS, save
from helpers.intervals import Estimate
from helpers.load import batching
from helpers.load.batching import BatchPoint

GO, ONNX = "go-api-onnx", "python-api-onnx"
MIB = 1024 * 1024


def _colour(name: str) -> str | None:
    return COLOURS.get(name.split(".")[0])


# -- batching ------------------------------------------------------------------------------


def batching_table(points: list[BatchPoint]) -> pd.DataFrame:
    rows = [
        {
            "service": p.service,
            "rows per request": p.batch,
            "rate [req/s]": p.rate,
            "CPU per request [µs]": p.step.cpu_us_per_request().text(),
            "CPU per prediction [µs]": p.cpu_us_per_prediction().text("{:,.1f}"),
            "p95 per request [ms]": p.step.p95_ms().text("{:.1f}"),
            "verdict": p.step.verdict(),
        }
        for p in points
    ]
    return pd.DataFrame(rows).set_index(["service", "rows per request"]).sort_index()


def batching_figure(points: list[BatchPoint], path: Path | None = None) -> plt.Figure:
    """CPU per prediction (left) and p95 per request (right) against the batch size."""
    figure, (cpu_ax, p95_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for service in dict.fromkeys(p.service for p in points):
        mine = sorted((p for p in points if p.service == service), key=lambda p: p.batch)
        cpu = [p.cpu_us_per_prediction() for p in mine]
        p95 = [p.step.p95_ms() for p in mine]
        sizes = [p.batch for p in mine]
        for ax, values in ((cpu_ax, cpu), (p95_ax, p95)):
            ax.errorbar(
                sizes,
                [e.value for e in values],
                yerr=[
                    [max(0, e.value - e.low) for e in values],
                    [max(0, e.high - e.value) for e in values],
                ],
                fmt="o-",
                capsize=2,
                color=_colour(service),
                label=service,
            )
    for ax, label in ((cpu_ax, "CPU per prediction [µs]"), (p95_ax, "p95 per request [ms]")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("rows per request (client batch)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    cpu_ax.set_title("What a prediction costs in a batch")
    p95_ax.set_title("What the batch costs in latency (at half the quota)")
    cpu_ax.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure


def crossover_sentence(points: list[BatchPoint]) -> tuple[dict[str, Any], str]:
    """The batch size at which Python + ONNX Runtime per prediction matches Go single-row."""
    go_single = next((p for p in points if p.service == GO and p.batch == 1), None)
    if go_single is None:
        return {}, "Go was not measured at one row per request: no crossover to state."
    reference = go_single.cpu_us_per_prediction()
    at, how = batching.crossover(points, ONNX, reference.value)
    numbers = {"go_single_row_cpu_us": reference.record(), "onnx_batch_at_crossover": at}
    if at is None:
        return numbers, (
            f"Python + ONNX Runtime never reaches Go's single-row CPU per request "
            f"({reference.text('{:.0f}', ' µs')}): {how}."
        )
    return numbers, (
        f"Python + ONNX Runtime spends per prediction what Go spends on a single-row request "
        f"({reference.text('{:.0f}', ' µs')}) from about {at:.0f} rows per request ({how})."
    )


def batching_section(points: list[BatchPoint], crossover: dict[str, Any]) -> dict[str, Any]:
    return {
        "utilisation": batching.UTILISATION,
        "points": [p.record() for p in points],
        "crossover": crossover,
    }


# -- scaling -------------------------------------------------------------------------------


def scaling_rows(
    measured: list[dict[str, Any]], capacity_section: dict[str, dict[str, Any]], budget: float
) -> list[dict[str, Any]]:
    """The scaling configurations plus each service at the budget (notebook 06's search)."""
    rows = list(measured)
    for service, found in capacity_section.items():
        estimate = Estimate.from_record(found.get("interval"))
        rows.append(
            {
                "service": service,
                "instance": service,
                "cpus": budget,
                "workers": 1,
                "memory_bytes": 128 * MIB,
                "capacity": estimate.record(),
                "capacity_per_cpu": estimate.scaled(1 / budget).record(),
                "display": found.get("display"),
                "bound": found.get("bound"),
                "from": "notebook 06",
            }
        )
    return sorted(rows, key=lambda r: (r["service"], r["workers"], r["cpus"]))


def scaling_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    shown = [
        {
            "service": r["service"],
            "CPUs": r["cpus"],
            "workers": r["workers"],
            "memory [MiB]": round(r["memory_bytes"] / MIB),
            "capacity [req/s]": r["display"],
            "capacity per CPU": Estimate.from_record(r["capacity_per_cpu"]).text(),
            "bound": r["bound"],
        }
        for r in rows
    ]
    return pd.DataFrame(shown).set_index(["service", "workers", "CPUs"])


def scaling_figure(rows: list[dict[str, Any]], path: Path | None = None) -> plt.Figure:
    """Capacity per CPU against CPUs, a line per service and worker count; hollow markers are
    lower bounds (the generator, not the service, ran out)."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    frame = pd.DataFrame(rows)
    for (service, workers), group in frame.groupby(["service", "workers"], sort=False):
        group = group.sort_values("cpus")
        per_cpu = [Estimate.from_record(r) for r in group["capacity_per_cpu"]]
        bounded = list(group["bound"] != "service")
        colour = _colour(str(service))
        style = "-" if workers == 1 else "--"
        ax.plot(group["cpus"], [e.value for e in per_cpu], style, color=colour,
                label=f"{service}, {'1 worker' if workers == 1 else 'workers ≥ 2'}")  # fmt: skip
        for cpus, estimate, bound in zip(group["cpus"], per_cpu, bounded, strict=True):
            ax.errorbar(
                [cpus],
                [estimate.value],
                yerr=[
                    [max(0, estimate.value - estimate.low)],
                    [max(0, estimate.high - estimate.value)],
                ]
                if estimate.finite and math.isfinite(estimate.high)
                else None,
                fmt="o",
                color=colour,
                mfc="white" if bound else colour,
                capsize=2,
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("CPU quota [cores]")
    ax.set_ylabel("capacity per CPU [req/s per core]")
    ax.set_title("Does capacity grow with the CPU paid for? (hollow: a lower bound)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure


def scaling_sentence(rows: list[dict[str, Any]]) -> str:
    """Per service: capacity per CPU at the smallest and the largest quota measured."""
    said = []
    frame = pd.DataFrame(rows)
    for (service, workers), group in frame.groupby(["service", "workers"], sort=False):
        group = group.sort_values("cpus")
        if len(group) < 2:
            continue
        first, last = group.iloc[0], group.iloc[-1]
        a = Estimate.from_record(first["capacity_per_cpu"]).value
        b = Estimate.from_record(last["capacity_per_cpu"]).value
        lower = " (a lower bound)" if last["bound"] != "service" else ""
        said.append(
            f"{service} ({workers} worker{'s' if workers > 1 else ''}): {a:,.0f} req/s per CPU "
            f"at {first['cpus']:g} CPU, {b:,.0f}{lower} at {last['cpus']:g}"
        )
    return ("Capacity per CPU as the quota grows: " + "; ".join(said) + ".") if said else ""


# -- cold start -------------------------------------------------------------------------------


PHASES = ("imports_s", "model_load_s", "bind_s", "first_run_s")


def cold_start_table(section: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for instance, figures in section.items():
        row = {"instance": instance, "starts": figures["attempts"]}
        for phase in (*PHASES, "total_s"):
            row[phase.removesuffix("_s").replace("_", " ") + " [s]"] = Estimate.from_record(
                figures[phase]
            ).text("{:.3f}")
        row["working set [MiB]"] = (
            Estimate.from_record(figures["working_set_bytes"]).scaled(1 / MIB).text("{:.0f}")
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index("instance")


def cold_start_figure(section: dict[str, dict[str, Any]], path: Path | None = None):
    """A stacked bar per instance: the median of each phase from spawn to first answer."""
    figure, ax = plt.subplots(figsize=(8, 4))
    names = list(section)
    left = [0.0] * len(names)
    colours = plt.get_cmap("viridis")([0.1, 0.4, 0.65, 0.9])
    for phase, colour in zip(PHASES, colours, strict=True):
        values = [Estimate.from_record(section[n][phase]).value for n in names]
        values = [v if math.isfinite(v) else 0.0 for v in values]
        ax.barh(names, values, left=left, color=colour, label=phase.removesuffix("_s"))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("seconds from spawn (medians)")
    ax.set_title("Cold start under the quota: from spawn to the first correct answer")
    ax.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure


def cold_start_sentence(section: dict[str, dict[str, Any]]) -> str:
    parts = []
    for instance, figures in sorted(
        section.items(), key=lambda kv: Estimate.from_record(kv[1]["total_s"]).value
    ):
        total = Estimate.from_record(figures["total_s"])
        parts.append(f"{instance} {total.text('{:.2f}', ' s')}")
    return "From spawn to the first correct prediction (median): " + "; ".join(parts) + "."

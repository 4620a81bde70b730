"""The study's figures: the seed's four panels, client-vs-server latency, and the summary table.

Every figure takes tidy DataFrames from `helpers.analysis.metrics` (so it can be tested on
data made up in a test), draws one line per service in a fixed colour, labels axes with units, and
is saved as PNG under `run_dir/plots/` as well as shown inline.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

COLOURS = {
    "python-api-pkl": "#d62728",
    "python-api-onnx": "#ff7f0e",
    "go-api-onnx": "#1f77b4",
    "all": "#7f7f7f",
}
MIB = 1024 * 1024

# (metric, panel title, y label, scale applied to the values)
SEED_PANELS = [
    ("server_latency_p95_seconds", "p95 latency (server)", "p95 latency [ms]", 1000.0),
    ("server_requests_per_minute", "Requests per minute (served)", "requests / min", 1.0),
    ("memory_working_set_bytes", "Memory working set", "working set [MiB]", 1 / MIB),
    ("cpu_cores", "CPU used", "CPU [cores]", 1.0),
]


def _lines(
    ax: plt.Axes, frame: pd.DataFrame, metric: str, scale: float, label_suffix: str = "", **style
) -> None:
    data = frame[frame["metric"] == metric]
    for service, group in data.groupby("service", sort=False):
        group = group.sort_values("elapsed_s")
        ax.plot(
            group["elapsed_s"],
            group["value"] * scale,
            label=f"{service}{label_suffix}",
            color=COLOURS.get(service),
            **style,
        )


def save(figure: plt.Figure, path: Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def seed_panels(
    timeseries: pd.DataFrame,
    title: str,
    path: Path | None = None,
    cpu_limit_cores: float | None = None,
    memory_limit_bytes: float | None = None,
) -> plt.Figure:
    """The seed's dashboard: p95 latency, RPM, memory and CPU over time, one line per service.

    The limits, when known, are drawn as dashed lines: a line flat against them is a service
    at its quota, not a service that stopped needing more.
    """
    figure, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for ax, (metric, panel_title, ylabel, scale) in zip(axes.flat, SEED_PANELS, strict=True):
        _lines(ax, timeseries, metric, scale)
        ax.set_title(panel_title)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    planned = timeseries[timeseries["metric"] == "planned_requests_per_minute"]
    if not planned.empty:
        first = planned[planned["service"] == planned["service"].iloc[0]].sort_values("elapsed_s")
        axes[0, 1].plot(
            first["elapsed_s"], first["value"], color="black", ls=":", lw=1, label="planned"
        )
    if cpu_limit_cores:
        label = f"CPU quota ({cpu_limit_cores:g} cores)"
        axes[1, 1].axhline(cpu_limit_cores, color="black", ls="--", lw=1, label=label)
    if memory_limit_bytes:
        label = f"memory limit ({memory_limit_bytes / MIB:.0f} MiB)"
        axes[1, 0].axhline(memory_limit_bytes / MIB, color="grey", ls="-.", lw=1, label=label)
    for ax in axes.flat:
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1e-9))  # after the limit lines
    for ax in axes[1]:
        ax.set_xlabel("time since the service's load started [s]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(figure, path)
    return figure


def client_vs_server(
    timeseries: pd.DataFrame, per_service: pd.DataFrame, title: str, path: Path | None = None
) -> plt.Figure:
    """Left: server p95 over the rate window (solid) and k6's p95 since the start (dashed).
    Right: the whole phase's p95 from both sides, the like-for-like comparison.

    The gap between the two is time the request spent outside the handler: queueing in the
    socket backlog and the runtime (and, for k6, its own scheduling).
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    _lines(left, timeseries, "server_latency_p95_seconds", 1000.0)
    _lines(left, timeseries, "client_latency_p95_seconds", 1000.0, ls="--", label_suffix=" (k6)")
    left.set_title("p95 over time: server (window) vs k6 (since start, dashed)")
    left.set_xlabel("time since the service's load started [s]")
    left.set_ylabel("p95 latency [ms]")
    left.set_yscale("log")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    services = list(per_service.index)
    x = range(len(services))
    width = 0.38
    right.bar([i - width / 2 for i in x], per_service["server_p95_ms"], width, label="server")
    right.bar([i + width / 2 for i in x], per_service["client_p95_ms"], width, label="client (k6)")
    right.set_xticks(list(x), services)
    right.set_ylabel("p95 latency over the phase [ms]")
    right.set_title("Whole-phase p95: client vs server")
    right.legend()
    right.grid(alpha=0.3, axis="y")
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)
    return figure


def summary_table(per_service: pd.DataFrame) -> pd.DataFrame:
    """summary.json's per-service numbers in reading units (ms, MiB, %), for display."""
    table = pd.DataFrame(index=per_service.index)
    table["requests"] = per_service["requests"].astype(int)
    table["reached [%]"] = (100 * per_service["reached_ratio"]).round(1)  # k6 sent / planned
    table["errors [%]"] = (100 * per_service["error_rate"]).round(3)
    table["dropped iter."] = per_service["dropped_iterations"].astype(int)
    table["server p95 [ms]"] = per_service["server_p95_ms"].round(2)
    table["client p95 [ms]"] = per_service["client_p95_ms"].round(2)
    table["peak RPM"] = per_service["peak_rpm"].round(0)
    table["CPU mean [cores]"] = per_service["mean_cpu_cores"].round(3)
    table["CPU peak [cores]"] = per_service["peak_cpu_cores"].round(3)
    table["memory peak [MiB]"] = (per_service["peak_memory_working_set_bytes"] / MIB).round(1)
    table["throttled [%]"] = (100 * per_service["throttled_ratio"]).round(1)
    table["OOM kills"] = per_service["oom_kills"].astype("Int64")  # a count: 0, not 0.0
    if "stopped" in per_service and per_service["stopped"].notna().any():
        table["stopped"] = per_service["stopped"].fillna("")
    return table


def claims_table(verdicts: pd.DataFrame):
    """The claims as a left-aligned table without its index (long sentences read left to right)."""
    left = [{"selector": "th", "props": [("text-align", "left")]}]
    return (
        verdicts.style.hide(axis="index")
        .set_properties(**{"text-align": "left"})
        .set_table_styles(left)
    )

"""Prometheus → tidy DataFrames, per service, over the time windows of a finished load test.

Analysis reads only Prometheus (the run's own TSDB, reopened by `helpers.prometheus.tsdb`) and
run-folder files (k6's summaries, the load-test index, the frozen profile, the stack's record
of services that exited) — never the stack — so it works the same for both backends and for a
run re-analysed months later. The PromQL comes from `helpers.prometheus.queries` and goes through
`helpers.prometheus.client`; this module only picks time ranges, steps and windows, and reshapes.

Tidy means one row per (time, service, metric) for time series, one row per service for totals.
In isolated mode every service has its own window; `elapsed_s` counts from the start of the
service's own window, so the three ramps overlay on one x axis. A service that exited during
its window is measured only until it exited: its server and container figures after that
moment are not measured (dropped), and its row says when and how it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers.load.loadtest import Phase
from helpers.load.profiles import Profile
from helpers.prometheus import queries
from helpers.prometheus.client import query_instant, query_range
from helpers.serving.protocol import ServiceExit

# Client-side series stay after a service exits: k6 really saw those errors.
CLIENT_METRICS = {
    "client_latency_p95_seconds",
    "client_requests_per_minute",
    "client_error_ratio",
    "dropped_iterations",
    "planned_requests_per_minute",
}


def measured_windows(
    phase: Phase, exits: Sequence[ServiceExit] = ()
) -> dict[str, tuple[float, float]]:
    """Each service's window, cut where the service exited; services never loaded are left out."""
    stopped = {}
    for event in exits:
        stopped.setdefault(event.service, event.at)
    windows = {}
    for service, (start, end) in phase.windows.items():
        end = min(end, stopped.get(service, math.inf))
        if end > start:
            windows[service] = (start, end)
    return windows


def choose_step(duration_s: float, points: int = 240) -> float:
    """About `points` samples per line, never finer than the 1 s scrape interval."""
    return max(1.0, round(duration_s / points))


def choose_window(duration_s: float) -> str:
    """Rate window: long enough to smooth 1 s scrapes, short enough to follow a 15 s stage."""
    return f"{int(min(60, max(5, duration_s // 30)))}s"


def phase_timeseries(
    prom_url: str,
    phase: Phase,
    profile: Profile,
    exits: Sequence[ServiceExit] = (),
    names: list[str] | None = None,
    step: float | None = None,
    window: str | None = None,
) -> pd.DataFrame:
    """Every TIMESERIES query over each service's window: time, elapsed_s, service, metric, value.

    Coupled mode also keeps the 'all' service for dropped iterations (one iteration = three
    requests, so drops cannot be split per service there). Server and container samples after
    a service exited are dropped (not measured); client samples stay.
    """
    names = names or list(queries.TIMESERIES)
    measured = measured_windows(phase, exits)
    frames = []
    for service, (start, end) in phase.windows.items():
        if service not in measured:
            continue
        duration = end - start
        params = {
            "services": queries.services_regex([service]),
            "window": window or choose_window(duration),
            "run_id": phase.run_id,
        }
        for name in names:
            promql = queries.render(name, **params)
            frame = query_range(prom_url, promql, start, end, step or choose_step(duration))
            # Coupled drops belong to no single service: they are kept as the 'all' line.
            keep = {service, "all"} if phase.mode == "coupled" else {service}
            frame = frame[frame["service"].isin(keep)]
            if name not in CLIENT_METRICS:
                frame = frame[frame["timestamp"] <= measured[service][1]]
            frames.append(frame.assign(metric=name, elapsed_s=frame["timestamp"] - start))
        frames.append(planned_rpm(profile, service, start, end, window))
    columns = ["time", "elapsed_s", "service", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    tidy = pd.concat(frames, ignore_index=True).drop_duplicates(["timestamp", "service", "metric"])
    return tidy[columns].reset_index(drop=True)


def planned_rpm(
    profile: Profile, service: str, start: float, end: float, window: str | None
) -> pd.DataFrame:
    """The offered rate (req/min) k6 was told to send, averaged over the same rate window as
    the measured RPM — so "served vs planned" compares like with like, and the end of a ramp
    is not mistaken for a shortfall."""
    seconds = pd.Timedelta(window or choose_window(end - start)).total_seconds()
    step = choose_step(end - start)
    times = np.arange(start, end + step / 2, step)
    values = []
    for t in times:
        grid = np.linspace(max(t - seconds, start), t, 20) - start
        values.append(float(np.mean([profile.rate_at(x) for x in grid])))
    return pd.DataFrame(
        {
            "timestamp": times,
            "time": pd.to_datetime(times, unit="s", utc=True),
            "service": service,
            "value": values,
            "metric": "planned_requests_per_minute",
            "elapsed_s": times - start,
        }
    )


def phase_totals(prom_url: str, phase: Phase, exits: Sequence[ServiceExit] = ()) -> pd.DataFrame:
    """Every TOTALS query per service, over the part of its window that was measured.

    Index service, one column per query; a counter that never moved (no 5xx, no OOM kill)
    has no series in Prometheus and is reported as 0 when requests were served; anything else
    missing stays NaN, so a broken exporter never reads as "all fine".
    """
    rows = {}
    for service, (start, end) in measured_windows(phase, exits).items():
        params = {
            "services": queries.services_regex([service]),
            "range": f"{max(1, round(end - start))}s",
            "run_id": phase.run_id,
        }
        row = {}
        for name in queries.TOTALS:
            values = query_instant(prom_url, queries.render(name, table="totals", **params), end)
            row[name] = values.get(service, math.nan)
        # The 5xx series exists only once a 5xx happened: none while requests were served = 0.
        if math.isnan(row["server_errors_5xx"]) and not math.isnan(row["server_requests"]):
            row["server_errors_5xx"] = 0.0
        rows[service] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")


def peaks(timeseries: pd.DataFrame) -> pd.DataFrame:
    """Per service: the peak of every time-series metric (e.g. peak RPM, peak CPU cores)."""
    if timeseries.empty:
        return pd.DataFrame()
    return timeseries.pivot_table(index="service", columns="metric", values="value", aggfunc="max")


def service_metrics(
    phase: Phase,
    timeseries: pd.DataFrame,
    totals: pd.DataFrame,
    exits: Sequence[ServiceExit] = (),
) -> pd.DataFrame:
    """The per-service numbers of summary.json for one phase, in units a reader expects.

    Client numbers (requests, errors, drops, client p95) come from k6's end-of-test summary —
    exact, not sampled; server and container numbers from Prometheus, over the measured part of
    the window (`measured_s`; `stopped` says how a service that exited ended).
    """
    client = phase.service_table()
    top = peaks(timeseries)
    measured = measured_windows(phase, exits)
    stopped = {e.service: e for e in exits if e.service in phase.windows}
    rows = {}
    for service in phase.services:
        c, t = client.loc[service], totals.loc[service] if service in totals.index else None

        def total(name: str, t: pd.Series | None = t) -> float:
            return float(t[name]) if t is not None and name in t else math.nan

        def peak(name: str, s: str = service) -> float:
            if top.empty or name not in top.columns or s not in top.index:
                return math.nan
            return float(top.loc[s, name])

        start, end = measured.get(service, (0.0, 0.0))
        served = total("server_requests")
        cpu_ms = total("cpu_cores_mean") * (end - start) * 1000 / served if served else math.nan
        event = stopped.get(service)
        rows[service] = {
            "requests": int(c["requests"]),
            "planned_requests": int(c["planned_requests"]),
            "reached_ratio": float(c["reached_ratio"]),
            "error_rate": float(c["error_rate"]),
            "dropped_iterations": int(c["dropped_iterations"]),
            "server_5xx": total("server_errors_5xx"),
            "server_p95_ms": total("server_latency_p95_seconds") * 1000,
            "client_p95_ms": float(c["p95_ms"]),
            "peak_rpm": peak("server_requests_per_minute"),
            "mean_cpu_cores": total("cpu_cores_mean"),
            "peak_cpu_cores": peak("cpu_cores"),
            "cpu_ms_per_request": cpu_ms,
            "peak_memory_working_set_bytes": total("memory_working_set_peak_bytes"),
            "throttled_ratio": total("cpu_throttled_ratio"),
            "oom_kills": total("oom_kills"),
            "measured_s": end - start,
            "stopped": event.sentence() if event else None,
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")

"""The query client: PromQL in, plain Python values out, through `prometheus-api-client`.

Every room that reads Prometheus — a step's counters while the load runs (helpers.load), a
finished run's time series (helpers.analysis) — asks through these three functions, so a
refused query always fails the same way: `PrometheusError` quoting the query.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests import RequestException

HTTP_TIMEOUT_S = 30


class PrometheusError(RuntimeError):
    """Prometheus refused a query (bad PromQL, bad range); the message quotes the query."""


def _client(prom_url: str) -> PrometheusConnect:
    return PrometheusConnect(url=prom_url, disable_ssl=True, timeout=HTTP_TIMEOUT_S)


def _ask(call, promql: str):
    try:
        return call()
    except (PrometheusApiClientException, RequestException) as error:
        raise PrometheusError(f"{error} for query: {promql}") from None


def query_range(prom_url: str, promql: str, start: float, end: float, step: float) -> pd.DataFrame:
    """Columns time (UTC), service, value; NaN/Inf samples (e.g. p95 of no requests) dropped."""
    result = _ask(
        lambda: _client(prom_url).custom_query_range(
            promql,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}s",
        ),
        promql,
    )
    rows = [
        (float(ts), series["metric"].get("service", ""), float(value))
        for series in result
        for ts, value in series["values"]
    ]
    frame = pd.DataFrame(rows, columns=["timestamp", "service", "value"])
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))]
    frame.insert(0, "time", pd.to_datetime(frame["timestamp"], unit="s", utc=True))
    return frame.reset_index(drop=True)


def query_instant(prom_url: str, promql: str, at: float) -> dict[str, float]:
    """service → value of an instant query evaluated at unix time `at`."""
    result = _ask(lambda: _client(prom_url).custom_query(promql, params={"time": at}), promql)
    return {series["metric"].get("service", ""): float(series["value"][1]) for series in result}


def query_samples(prom_url: str, selector: str, at: float) -> list[tuple[float, float]]:
    """The raw (time, value) samples of a range selector (`metric{…}[30s]`) evaluated at `at`,
    of its first series: what was scraped, without rate()'s extrapolation."""
    result = _ask(lambda: _client(prom_url).custom_query(selector, params={"time": at}), selector)
    if not result:
        return []
    return [(float(ts), float(value)) for ts, value in result[0]["values"]]

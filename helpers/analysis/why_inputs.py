"""What notebook 08 reads besides its own comparisons: the load test's phases (notebook 04's
TSDB, reopened), notebook 06's tuned capacities, and the seed's GridSearchCV pickle.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.analysis import metrics


@dataclass
class PhaseViews:
    """What 08 reads of one load-test phase (notebook 04's TSDB, reopened)."""

    per_service: pd.DataFrame  # helpers.analysis.metrics.service_metrics
    series: pd.DataFrame  # RPM (served, planned), CPU and memory (usage, working set)
    series_5s: pd.DataFrame  # p95 at a 5 s scrape: the post's buckets, the study's, k6's
    totals: pd.DataFrame  # helpers.analysis.metrics.phase_totals
    window_s: float  # the rate window of `series`


VIEW_METRICS = [
    "server_requests_per_minute",
    "cpu_cores",
    "memory_usage_bytes",
    "memory_working_set_bytes",
]
P95_METRICS = [
    "server_latency_p95_seconds_seed_buckets",
    "server_latency_p95_seconds",
    "client_latency_p95_seconds",
]
POST_SCRAPE_S = 5  # the post's Prometheus scraped the collector and cAdvisor every 5 s


def read_phases(prom_url: str, load_test, profile, exits=()) -> dict[str, PhaseViews]:
    """Every phase of a load test: per-service numbers, the series 08 draws, and the p95 the
    post's dashboard would have shown (5 s steps, increase over 5 s)."""
    views = {}
    for phase in load_test.phases:
        series = metrics.phase_timeseries(prom_url, phase, profile, exits, names=VIEW_METRICS)
        totals = metrics.phase_totals(prom_url, phase, exits)
        series_5s = metrics.phase_timeseries(
            prom_url, phase, profile, exits, names=P95_METRICS, step=POST_SCRAPE_S,
            window=f"{POST_SCRAPE_S}s",
        )  # fmt: skip
        windows = [end - start for start, end in phase.windows.values()]
        window_s = pd.Timedelta(metrics.choose_window(max(windows, default=60))).total_seconds()
        views[phase.mode] = PhaseViews(
            metrics.service_metrics(phase, series, totals, exits),
            series,
            series_5s,
            totals,
            window_s,
        )
    return views


def gridsearch_vs_best(search, rows: np.ndarray) -> dict[str, Any]:
    """The seed pickled the whole GridSearchCV; the study pickles its best_estimator_. Same
    probabilities (GridSearchCV.predict_proba delegates to best_estimator_), and the sizes of
    both pickles."""
    whole = search.predict_proba(rows)
    best = search.best_estimator_.predict_proba(rows)
    return {
        "same_probabilities": bool(np.array_equal(whole, best)),
        "max_abs_difference": float(np.max(np.abs(whole - best))),
        "gridsearch_pickle_bytes": len(pickle.dumps(search, protocol=pickle.HIGHEST_PROTOCOL)),
        "best_estimator_pickle_bytes": len(
            pickle.dumps(search.best_estimator_, protocol=pickle.HIGHEST_PROTOCOL)
        ),
    }


def tuned_capacity(run_dir: Path) -> dict[str, Any] | None:
    """summary.json's `capacity` section (notebook 06's tuned capacities), None without it."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("capacity")

"""The Grafana dashboard, generated from `helpers.prometheus.queries` — the notebooks' own PromQL.

The report's numbers (helpers.analysis.metrics) and the live dashboard must answer the same
questions, so the dashboard is never edited by hand: this module turns the named queries into
panels and `observability/grafana/dashboards/onnx-serving-study.json` is its committed output. A
unit test regenerates it and compares, so the two cannot drift; after changing a query, run

    python -m helpers.prometheus.dashboard          # rewrite the JSON
    python -m helpers.prometheus.dashboard --check  # exit 1 if the committed JSON is stale

Placeholders map to Grafana: `$window` → `$__rate_interval` (Grafana picks a window that holds
enough scrapes at any zoom); `$services` and `$run_id` stay as they are — they are dashboard
variables of the same names (a multi-value `$services` is expanded to a regex by Grafana's
Prometheus datasource, exactly what the queries' `=~` expect).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from helpers import paths
from helpers.prometheus import queries
from helpers.serving.services import SERVICE_NAMES

GRAFANA_DIR = paths.OBSERVABILITY_DIR / "grafana"
DASHBOARD_PATH = GRAFANA_DIR / "dashboards" / "onnx-serving-study.json"
DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_UID = "onnx-serving-study"

# (title, [(query name, legend suffix)], Grafana unit, description of what to look at)
PANELS: list[tuple[str, list[tuple[str, str]], str, str]] = [
    (
        "p95 latency of POST /predict — server vs client",
        [("server_latency_p95_seconds", "server"), ("client_latency_p95_seconds", "k6")],
        "s",
        "Server: the service's own histogram. k6: what the client saw (queueing included); "
        "the gap between the two is time spent outside the handler.",
    ),
    (
        "Requests per minute — server vs client",
        [("server_requests_per_minute", "server"), ("client_requests_per_minute", "k6")],
        "reqpm",
        "Requests answered (server) and completed (k6); the seed ramps 100 → 16000/min.",
    ),
    (
        "CPU (cores)",
        [("cpu_cores", "")],
        "none",
        "CPU time per second of wall time; 0.5 is the whole quota of a service.",
    ),
    (
        "Memory working set",
        [("memory_working_set_bytes", ""), ("memory_limit_bytes", "limit")],
        "bytes",
        "Working set (what the kernel cannot reclaim) against the 128 MiB limit.",
    ),
    (
        "CPU throttling (share of CFS periods)",
        [("cpu_throttled_ratio", "")],
        "percentunit",
        "Share of 100 ms periods in which a service used up its quota and was paused.",
    ),
    (
        "Errors — server 5xx and k6 failures",
        [("server_error_ratio", "server 5xx"), ("client_error_ratio", "k6 failed")],
        "percentunit",
        "Should stay at 0: any 5xx fails the contract.",
    ),
]


def datasource_uid(path: Path = DATASOURCE_FILE) -> str:
    """The fixed uid of the provisioned Prometheus datasource (one source: the YAML)."""
    sources = yaml.safe_load(path.read_text())["datasources"]
    return next(s["uid"] for s in sources if s["type"] == "prometheus")


def grafana_promql(name: str) -> str:
    """Query `name` of queries.TIMESERIES with only `$window` rewritten for Grafana."""
    return queries.TIMESERIES[name].promql.replace("$window", "$__rate_interval")


def _panel(
    index: int,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    text: str,
    datasource: dict[str, str],
) -> dict[str, Any]:
    width, height = 12, 9
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": text,
        "datasource": datasource,
        "gridPos": {"x": (index % 2) * width, "y": (index // 2) * height, "w": width, "h": height},
        "fieldConfig": {
            "defaults": {"unit": unit, "min": 0, "custom": {"lineWidth": 2, "spanNulls": True}},
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + number),
                "datasource": datasource,
                "expr": grafana_promql(name),
                "legendFormat": "{{service}}" + (f" {suffix}" if suffix else ""),
                "range": True,
            }
            for number, (name, suffix) in enumerate(targets)
        ],
    }


def build(uid: str | None = None) -> dict[str, Any]:
    """The dashboard as a dict (deterministic: same queries in, same JSON out)."""
    datasource = {"type": "prometheus", "uid": uid or datasource_uid()}
    services = list(SERVICE_NAMES)
    return {
        "uid": DASHBOARD_UID,
        "title": "ONNX serving study",
        "description": (
            "Generated by helpers/prometheus/dashboard.py from queries.py — do not edit."
        ),
        "tags": ["onnx-serving-study"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "graphTooltip": 1,
        "templating": {
            "list": [
                {
                    "name": "services",
                    "label": "service",
                    "type": "custom",
                    "query": ",".join(services),
                    "multi": True,
                    "includeAll": True,
                    "allValue": queries.services_regex(services),
                    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "options": [],
                },
                {
                    "name": "run_id",
                    "label": "k6 run",
                    "type": "query",
                    "datasource": datasource,
                    "query": {"query": "label_values(k6_http_reqs_total, run_id)", "refId": "A"},
                    "definition": "label_values(k6_http_reqs_total, run_id)",
                    "refresh": 2,
                    "sort": 2,
                    "multi": False,
                    "includeAll": False,
                    "current": {},
                    "options": [],
                },
            ]
        },
        "panels": [
            _panel(i, title, targets, unit, text, datasource)
            for i, (title, targets, unit, text) in enumerate(PANELS)
        ],
    }


def render(uid: str | None = None) -> str:
    return json.dumps(build(uid), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed file is stale"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DASHBOARD_PATH.read_text() if DASHBOARD_PATH.exists() else ""
        if current != text:
            print(
                f"{DASHBOARD_PATH} is stale: run python -m helpers.prometheus.dashboard",
                file=sys.stderr,
            )
            return 1
        print(f"{DASHBOARD_PATH} is up to date")
        return 0
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The committed Grafana dashboard is exactly what helpers.prometheus.dashboard generates."""

from __future__ import annotations

import json

from helpers.prometheus import dashboard, queries


def test_the_committed_dashboard_is_the_generated_one() -> None:
    committed = dashboard.DASHBOARD_PATH.read_text()
    assert committed == dashboard.render(), (
        "observability/grafana/dashboards/onnx-serving-study.json is stale: "
        "run `python -m helpers.prometheus.dashboard` and commit the result"
    )


def test_every_panel_uses_the_provisioned_datasource_and_the_study_queries() -> None:
    built = json.loads(dashboard.render())
    uid = dashboard.datasource_uid()
    assert uid == "onnx-study-prometheus"
    expressions = []
    for panel in built["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            expressions.append(target["expr"])
    for name in (
        "server_latency_p95_seconds",
        "client_latency_p95_seconds",
        "cpu_cores",
        "memory_working_set_bytes",
        "cpu_throttled_ratio",
        "server_requests_per_minute",
        "client_requests_per_minute",
    ):
        expected = queries.TIMESERIES[name].promql.replace("$window", "$__rate_interval")
        assert expected in expressions, name
    # Only Grafana's own variables and the dashboard's are left to substitute.
    variables = {v["name"] for v in built["templating"]["list"]}
    assert variables == {"services", "run_id"}
    for expr in expressions:
        assert "$window" not in expr and "$range" not in expr


def test_the_generator_is_deterministic() -> None:
    assert dashboard.render() == dashboard.render()

"""queries → metrics → claims/plots/summary on data made here, in a real Prometheus.

Known series are written as OpenMetrics with timestamps and turned into TSDB blocks by
`promtool tsdb create-blocks-from openmetrics`; `helpers.prometheus.tsdb.reopen` then serves them
exactly as it serves a finished run. Expected values follow from the data (e.g. a CPU counter
growing by 0.25 s per second is 0.25 cores), so every assertion can fail.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers.analysis import claims, metrics, plots, summary
from helpers.load import loadtest, profiles
from helpers.prometheus import queries, tsdb
from helpers.serving.protocol import ServiceExit

SERVICES = ("python-api-pkl", "python-api-onnx", "go-api-onnx")
# Per service: requests/s, CPU cores, peak working set (MiB), share of requests in le=0.01
TRUTH = {
    "python-api-pkl": {"rps": 10, "cpu": 0.40, "mem_mib": 100, "fast_share": 0.5},
    "python-api-onnx": {"rps": 10, "cpu": 0.25, "mem_mib": 60, "fast_share": 0.9},
    "go-api-onnx": {"rps": 10, "cpu": 0.05, "mem_mib": 15, "fast_share": 1.0},
}
DURATION_S = 300
SMOKE = profiles.get_profile("smoke")
BUCKETS = ("0.005", "0.01", "0.025", "+Inf")


def _openmetrics(start: int) -> str:
    lines = []
    types = {
        "http_server_request_duration_seconds": "histogram",
        "container_cpu_usage_seconds": "counter",
        "container_memory_working_set_bytes": "gauge",
        "container_cpu_cfs_periods": "counter",
        "container_cpu_cfs_throttled_periods": "counter",
        "container_oom_events": "counter",
    }
    for name, kind in types.items():
        lines.append(f"# TYPE {name} {kind}")
        for service, truth in TRUTH.items():
            for t in range(0, DURATION_S + 1, 5):
                ts = start + t
                n = truth["rps"] * t
                if name == "http_server_request_duration_seconds":
                    labels = (
                        f'job="{service}",http_route="/predict",http_response_status_code="200"'
                    )
                    fast = round(n * truth["fast_share"])
                    counts = {"0.005": 0, "0.01": fast, "0.025": n, "+Inf": n}
                    for le in BUCKETS:
                        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {counts[le]} {ts}')
                    lines.append(f"{name}_count{{{labels}}} {n} {ts}")
                    lines.append(f"{name}_sum{{{labels}}} {n * 0.01} {ts}")
                elif name == "container_cpu_usage_seconds":
                    lines.append(f'{name}_total{{name="{service}"}} {truth["cpu"] * t} {ts}')
                elif name == "container_memory_working_set_bytes":
                    peak = truth["mem_mib"] * 2**20
                    value = peak if t == DURATION_S // 2 else peak // 2
                    lines.append(f'{name}{{name="{service}"}} {value} {ts}')
                elif name == "container_cpu_cfs_periods":
                    lines.append(f'{name}_total{{name="{service}"}} {10 * t} {ts}')
                elif name == "container_cpu_cfs_throttled_periods":
                    lines.append(f'{name}_total{{name="{service}"}} {t} {ts}')  # 10 %
                else:
                    lines.append(f'{name}_total{{name="{service}"}} 0 {ts}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """A run folder with a backfilled TSDB, a load-test index and k6 summaries."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found (Debian package prometheus; run `make setup`)")
    run_dir = tmp_path_factory.mktemp("run")
    start = (int(time.time()) - 3 * 3600) // 3600 * 3600  # whole hours back: inside one block
    source = run_dir / "series.om"
    source.write_text(_openmetrics(start))
    data = run_dir / "prometheus" / "data"
    data.mkdir(parents=True)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    k6_dir = run_dir / "k6" / "isolated"
    k6_dir.mkdir(parents=True)
    per_service = {}
    for service in SERVICES:
        per_service[f"http_reqs{{service:{service}}}"] = {"count": 1000}
        per_service[f"http_req_failed{{service:{service}}}"] = {"passes": 0, "value": 0.0}
        per_service[f"http_req_duration{{service:{service}}}"] = {"p(50)": 3, "p(95)": 9.0}
    (k6_dir / "summary.json").write_text(json.dumps({"metrics": per_service}))
    window = (start + 60.0, start + 240.0)
    phase = {
        "mode": "isolated",
        "profile": "smoke",
        "run_id": "test-isolated",
        "started_at": window[0],
        "ended_at": window[1],
        "services": list(SERVICES),
        "windows": {s: window for s in SERVICES},
        "planned_requests": 1000,
        "exit_code": 0,
        "summary_path": "",
        "log_path": "",
        "generator_cpu_seconds": 1.0,
    }
    index = {"profile": "smoke", "mode": "isolated", "run_id": "t", "phases": [phase]}
    (run_dir / "k6" / loadtest.INDEX_NAME).write_text(json.dumps(index))
    return run_dir


@pytest.fixture(scope="module")
def analysed(run: Path):
    load_test = loadtest.load_index(run)
    phase = load_test.phases[0]
    with tsdb.reopen(run) as url:
        series = metrics.phase_timeseries(url, phase, SMOKE, window="30s")
        totals = metrics.phase_totals(url, phase)
    return phase, series, totals, metrics.service_metrics(phase, series, totals)


@pytest.fixture(scope="module")
def analysed_with_an_exit(run: Path):
    """The same data, with go-api-onnx recorded as killed 90 s into its 180 s window."""
    phase = loadtest.load_index(run).phases[0]
    killed_at = phase.windows["go-api-onnx"][0] + 90
    exits = [ServiceExit("go-api-onnx", killed_at, "killed by SIGKILL", 0, "")]
    with tsdb.reopen(run) as url:
        series = metrics.phase_timeseries(url, phase, SMOKE, exits, window="30s")
        totals = metrics.phase_totals(url, phase, exits)
    return killed_at, series, totals, metrics.service_metrics(phase, series, totals, exits)


def test_every_query_renders_without_leftover_placeholders():
    params = {"services": "a|b", "window": "30s", "range": "60s", "run_id": "r"}
    for table, group in (("timeseries", queries.TIMESERIES), ("totals", queries.TOTALS)):
        for name in group:
            promql = queries.render(name, table=table, **params)
            for placeholder in queries.PLACEHOLDERS:
                assert f"${placeholder}" not in promql, (name, promql)


def test_a_missing_parameter_is_named():
    with pytest.raises(KeyError, match="window"):
        queries.render("cpu_cores", services="a")
    with pytest.raises(KeyError, match="known"):
        queries.render("no_such_query")


def test_totals_match_the_data(analysed):
    _, _, totals, _ = analysed
    for service, truth in TRUTH.items():
        assert totals.loc[service, "cpu_cores_mean"] == pytest.approx(truth["cpu"], rel=0.02)
        assert totals.loc[service, "memory_working_set_peak_bytes"] == truth["mem_mib"] * 2**20
        assert totals.loc[service, "cpu_throttled_ratio"] == pytest.approx(0.1, rel=0.02)
        assert totals.loc[service, "server_requests"] == pytest.approx(truth["rps"] * 180, rel=0.05)
        assert totals.loc[service, "server_errors_5xx"] == 0  # no 5xx series: zero, not NaN
        assert totals.loc[service, "oom_kills"] == 0
    # Buckets: pkl has half its requests ≤ 10 ms, the rest ≤ 25 ms → p95 in (10, 25] ms.
    assert 0.010 < totals.loc["python-api-pkl", "server_latency_p95_seconds"] <= 0.025
    assert totals.loc["go-api-onnx", "server_latency_p95_seconds"] <= 0.010


def test_timeseries_are_tidy_and_per_service(analysed):
    _, series, _, _ = analysed
    assert list(series.columns) == ["time", "elapsed_s", "service", "metric", "value"]
    cpu = series[series["metric"] == "cpu_cores"]
    assert set(cpu["service"]) == set(SERVICES)
    for service, truth in TRUTH.items():
        values = cpu[cpu["service"] == service]["value"]
        assert values.median() == pytest.approx(truth["cpu"], rel=0.05)
    rpm = series[series["metric"] == "server_requests_per_minute"]
    assert rpm["value"].median() == pytest.approx(600, rel=0.05)


def test_service_metrics_combine_k6_and_prometheus(analysed):
    _, _, _, per_service = analysed
    row = per_service.loc["python-api-onnx"]
    assert row["requests"] == 1000 and row["client_p95_ms"] == 9.0
    assert row["peak_memory_working_set_bytes"] == 60 * 2**20
    # 0.25 cores for 180 s over 10 req/s x 180 s = 25 ms of CPU per request
    assert row["cpu_ms_per_request"] == pytest.approx(25, rel=0.05)


def test_claims_are_computed_from_the_numbers(analysed):
    _, series, _, per_service = analysed
    assert claims.memory_ranking(per_service).verdict == claims.HOLDS
    assert claims.cpu_ranking(per_service).verdict == claims.HOLDS
    flipped = per_service.copy()
    flipped.loc["go-api-onnx", "peak_memory_working_set_bytes"] = 500 * 2**20
    assert claims.memory_ranking(flipped).verdict == claims.FAILS
    flipped.loc["go-api-onnx", "peak_memory_working_set_bytes"] = math.nan
    assert claims.memory_ranking(flipped).verdict == claims.INCONCLUSIVE
    table = claims.check_all(per_service, series)
    assert list(table.columns) == ["claim", "verdict", "evidence"] and len(table) == 4


def test_p95_stability_and_keeping_up_on_made_up_series():
    rows = []
    for t in range(0, 100, 5):
        rows.append(("go-api-onnx", "server_latency_p95_seconds", t, 0.002))
        rows.append(("python-api-pkl", "server_latency_p95_seconds", t, 0.002 * (1 + t / 10)))
        for service in claims.CLAIMED_ORDER:
            served = 1000 if service != "python-api-pkl" or t < 50 else 500
            rows.append((service, "server_requests_per_minute", t, served))
            rows.append((service, "planned_requests_per_minute", t, 1000))
    frame = pd.DataFrame(rows, columns=["service", "metric", "elapsed_s", "value"])
    assert claims.p95_stability(frame).verdict == claims.HOLDS
    assert claims.p95_stability(frame, service="python-api-pkl").verdict == claims.FAILS
    verdict = claims.keeps_up(frame)
    assert verdict.verdict == claims.FAILS and "python-api-pkl" in verdict.evidence


def test_a_service_that_stopped_is_not_measured_after_it_stopped(analysed_with_an_exit):
    """The defect: go-api-onnx killed mid-load, and its figures and claims went on "holding"."""
    _, series, totals, per_service = analysed_with_an_exit
    go = series[(series["service"] == "go-api-onnx") & (series["metric"] == "cpu_cores")]
    assert not go.empty and go["elapsed_s"].max() <= 90
    assert per_service.loc["go-api-onnx", "measured_s"] == pytest.approx(90)
    assert "killed by SIGKILL" in per_service.loc["go-api-onnx", "stopped"]
    assert pd.isna(per_service.loc["python-api-pkl", "stopped"])
    # Over the 90 s it ran it served 10 req/s.
    assert totals.loc["go-api-onnx", "server_requests"] == pytest.approx(900, rel=0.1)
    table = claims.check_all(per_service, series)
    assert list(table["verdict"]) == [
        claims.INCONCLUSIVE,  # memory ranking
        claims.INCONCLUSIVE,  # CPU ranking
        claims.INCONCLUSIVE,  # go's p95 stability
        claims.FAILS,  # keeping up: a service that stopped did not
    ]
    assert all("go-api-onnx stopped" in evidence for evidence in table["evidence"])


def test_plots_are_labelled_and_saved(analysed, tmp_path):
    _, series, _, per_service = analysed
    figure = plots.seed_panels(series, "test", tmp_path / "panels.png", 0.5, 128 * 2**20)
    assert (tmp_path / "panels.png").stat().st_size > 0
    assert len(figure.axes) == 4
    assert all(ax.get_ylabel() and ax.get_title() for ax in figure.axes)
    assert all(len(ax.get_lines()) >= 3 for ax in figure.axes)
    plots.client_vs_server(series, per_service, "test", tmp_path / "cvs.png")
    assert (tmp_path / "cvs.png").exists()
    table = plots.summary_table(per_service)
    assert table.loc["go-api-onnx", "memory peak [MiB]"] == 15.0


def test_summary_json_has_every_field_and_no_nan(analysed, tmp_path):
    phase, series, _, per_service = analysed
    record = summary.build(
        run_id="r",
        profile="smoke",
        mode="isolated",
        backend="local",
        limits_enforced=True,
        limits={},
        model={"test_accuracy": 1.0},
        parity=None,
        per_service={"isolated": per_service},
        phases={"isolated": {"start": phase.started_at, "end": math.nan}},
        claims={"isolated": claims.check_all(per_service, series)},
    )
    path = summary.write(record, tmp_path)
    loaded = json.loads(path.read_text())  # strict JSON: NaN would have failed to write
    for service in SERVICES:
        assert set(summary.SERVICE_FIELDS) <= set(loaded["services"][service]["isolated"])
    assert loaded["phases"]["isolated"]["end"] is None
    with pytest.raises(KeyError, match="peak_rpm"):
        summary.build(
            **{**record_args(record), "per_service": {"x": per_service.drop(columns="peak_rpm")}}
        )


def record_args(record: dict) -> dict:
    return {
        "run_id": "r",
        "profile": "smoke",
        "mode": "isolated",
        "backend": "local",
        "limits_enforced": True,
        "limits": {},
        "model": {},
        "parity": None,
        "phases": {},
        "claims": {},
    }

"""The local stack under the smoke profile, end to end, as `make study` runs it.

Asserts what the study depends on: limits read back as 0.5 CPU / 128 MiB; Prometheus has a
series of every contract metric for every service; k6 reached ≥ 95 % of its planned requests
with no 5xx; and after teardown no process of the run is alive and no cgroup is left.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from helpers import net
from helpers.load import loadtest
from helpers.prometheus import queries
from helpers.serving.services import SERVICE_NAMES
from helpers.serving.stack import start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, model_artifacts: Path):
    run_dir = tmp_path_factory.mktemp("smoke-run")
    # Free ports, not the seed's defaults: a developer's own stack may hold 5001-5003/9090.
    ports = {name: net.free_port() for name in (*SERVICE_NAMES, "prometheus")}
    stack = start_stack("local", run_dir=run_dir, artifacts_dir=model_artifacts, ports=ports)
    try:
        result = loadtest.run_load_test(stack, "smoke", "coupled", progress=False)
        series = {
            metric: _series(stack.prometheus_url, metric, label, result.phases[0].run_id)
            for metric, label in queries.CONTRACT_METRICS.items()
        }
        limits = dict(stack.limits)
        enforced = stack.limits_enforced
    finally:
        stack.stop()
    record = json.loads((run_dir / "stack" / "stack.json").read_text())
    return {
        "result": result,
        "series": series,
        "limits": limits,
        "enforced": enforced,
        "record": record,
    }


def _series(prom_url: str, metric: str, label: str, run_id: str) -> set[str]:
    selector = f'{metric}{{run_id="{run_id}"}}' if metric.startswith("k6_") else metric
    response = httpx.get(f"{prom_url}/api/v1/series", params={"match[]": selector}, timeout=10)
    response.raise_for_status()
    return {s.get(label, "") for s in response.json()["data"]}


def test_limits_read_back_as_the_budget(smoke_run):
    assert smoke_run["enforced"], "cgroup limits were not enforced on this machine"
    for name in SERVICE_NAMES:
        limits = smoke_run["limits"][name]
        assert limits.cpu_cores == pytest.approx(0.5)
        assert limits.memory_bytes == 128 * 2**20


@pytest.mark.parametrize("metric", list(queries.CONTRACT_METRICS))
def test_every_contract_metric_has_a_series_per_service(smoke_run, metric):
    missing = set(SERVICE_NAMES) - smoke_run["series"][metric]
    assert not missing, f"{metric}: no series for {sorted(missing)}"


def test_k6_reached_its_plan_without_5xx(smoke_run):
    phase = smoke_run["result"].phases[0]
    table = phase.service_table()
    for name in SERVICE_NAMES:
        assert table.loc[name, "reached_ratio"] >= 0.95, table.loc[name].to_dict()
        assert table.loc[name, "failed"] == 0, table.loc[name].to_dict()
    # k6's status check ("status is 200") over every request of the run.
    checks = json.loads(Path(phase.summary_path).read_text())["metrics"]["checks"]
    assert checks["passes"] > 0 and checks["fails"] == 0, checks


def test_nothing_is_left_after_teardown(smoke_run):
    record = smoke_run["record"]
    pids = [s["pid"] for s in record["services"].values()]
    pids += [record["prometheus"]["pid"], record["exporter"]["pid"]]
    alive = [pid for pid in pids if pid and Path(f"/proc/{pid}").exists()]
    assert not alive, f"processes of the run still alive: {alive}"
    dirs = [d for s in record["services"].values() for d in s["cgroup_dirs"].values()]
    left = [d for d in dirs if Path(d).exists()]
    assert not left, f"cgroups left behind: {left}"
    assert math.isfinite(smoke_run["result"].phases[0].ended_at)

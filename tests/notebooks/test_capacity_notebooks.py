"""Notebooks 06, 07 and 00 in the folder's one smoke study: what they recorded is computed
from what the run measured — the machine read off the machine, every multiple re-made from the
logged windows — and every figure carries its interval.

Asserts on values the notebooks recorded (summary.json and the run folder's logs).
"""

from __future__ import annotations

import json
import math

import nbformat
import pytest

from helpers import intervals, machine
from helpers.intervals import Estimate
from helpers.load import interleave, windows
from helpers.load.capacity import FLOOR, SERVED
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def summary(smoke_study):
    return json.loads((smoke_study["run"] / "summary.json").read_text())


def test_the_machine_is_read_off_the_machine_not_typed(summary):
    recorded, now = summary["machine"], machine.describe()
    for key in ("cpu_model", "logical_cpus", "usable_cpus", "kernel", "cgroup_version"):
        assert recorded[key] == now[key], key
    assert set(recorded["load_average"]) == {"1m", "5m", "15m"}
    assert all(v >= 0 for v in recorded["load_average"].values())


def test_every_capacity_has_an_interval_around_it_and_says_its_bound(summary):
    for service in SERVICE_NAMES:
        found = summary["capacity"][service]
        capacity = Estimate.from_record(found["interval"])
        assert found["steps"], service
        if found["rate_rps"] is None:
            assert "none passed" in found["display"]
            continue
        assert capacity.value == found["rate_rps"]
        assert capacity.low <= capacity.value
        bounded = found["bound"] == "service"  # else a lower bound: no rate above it failed
        assert capacity.value <= capacity.high if bounded else not capacity.high < capacity.value
        assert found["display"].startswith("≥") == (not bounded)
        cpu = Estimate.from_record(found["service_cpu_us_per_request"])
        assert cpu.low <= cpu.value <= cpu.high and cpu.value > 0


def test_the_floors_are_re_made_from_the_logged_windows(smoke_study, summary):
    """The multiple of a service's no-op floor is computed from the ladder's windows: re-made
    from the run folder's log, it is the same number."""
    rows = windows.read(smoke_study["run"] / "capacity" / "ladder.jsonl")
    for record in summary["ladder"]:
        arms = [interleave.Arm(a["target"], label) for label, a in record["arms"].items()]
        again = interleave.from_log(rows, interleave.Comparison(record["name"], arms, 1))
        multiple = again.multiple(SERVED, FLOOR)
        recorded = Estimate.from_record(summary["floors"][record["name"]]["multiple_of_floor"])
        assert multiple.value == pytest.approx(recorded.value)
        served = again.cpu_us_per_request(SERVED).value
        floor = again.cpu_us_per_request(FLOOR).value
        assert multiple.value == pytest.approx(served / floor)
    assert {"FastAPI" in label for label in summary["ladder"][0]["arms"]} == {True, False}


def test_capacity_windows_give_the_recorded_cpu_per_request(smoke_study, summary):
    rows = windows.read(smoke_study["run"] / "capacity" / "windows.jsonl")
    for service in SERVICE_NAMES:
        at = summary["capacity"][service]["rate_rps"]
        if at is None:
            continue
        mine = [r for r in rows if r["target"] == service and r["label"] == f"capacity {at}"]
        judged = mine[1:] if len(mine) > 1 else mine
        again = intervals.ratio_of_sums([r["cpu_s"] for r in judged], [r["ok"] for r in judged])
        recorded = Estimate.from_record(summary["capacity"][service]["service_cpu_us_per_request"])
        assert again.value * 1e6 == pytest.approx(recorded.value)


def test_07_records_batching_scaling_cold_start_and_both_pricings(summary):
    points = summary["batching"]["points"]
    assert {p["service"] for p in points} == set(SERVICE_NAMES)
    assert {p["batch"] for p in points} >= {1, 64}
    for p in points:
        per_prediction = Estimate.from_record(p["cpu_us_per_prediction"]).value
        per_request = Estimate.from_record(p["cpu_us_per_request"]).value
        assert per_prediction == pytest.approx(per_request / p["batch"])
    sizes = {row["cpus"] for row in summary["scaling"]["configurations"]}
    assert len(sizes) >= 2
    for service in SERVICE_NAMES:
        total = Estimate.from_record(summary["cold_start"][service]["total_s"])
        assert 0 < total.value < 120
    cost = summary["cost"]
    assert {p["name"] for p in cost["prices"]} == {"x86", "arm"}
    for plan in cost["plans"]:
        billed = Estimate.from_record(plan["billed_dollars_per_million"]).value
        per_resource = Estimate.from_record(plan["per_resource_dollars_per_million"]).value
        if math.isfinite(billed):
            assert billed >= per_resource  # a task sold holds at least the resources priced
    assert set(summary["findings"]) >= {"fastapi", "batching", "scaling", "cold_start"}


def test_00_says_every_section_with_its_intervals(smoke_study, summary):
    executed = nbformat.read(smoke_study["run"] / "00_summary.ipynb", as_version=4)
    text = "\n".join(
        str(output.get("data", {}).get("text/markdown", "")) + str(output.get("text", ""))
        for cell in executed.cells
        for output in cell.get("outputs", [])
    )
    assert "Capacity at p95 ≤ 25 ms" in text
    assert "within this run" in text
    assert summary["machine"]["cpu_model"] in text
    for sentence in summary["findings"].values():
        for said in sentence if isinstance(sentence, list) else [sentence]:
            assert said in text

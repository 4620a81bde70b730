"""Notebook 08, run headless through helpers.study at smoke size in the folder's one smoke
study (after the load test it explains); assert on the `ablation` section it wrote to
summary.json and on run_dir/ablation/ (ablation.json and the comparisons' windows)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import sizing
from helpers.intervals import Estimate
from helpers.load import ablation, ablation_plan, factors
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks

SMOKE = sizing.for_profile("smoke").why
STATES = {"effect", "none", "undecided", "not measured", "not applicable"}


@pytest.fixture(scope="module")
def why_run(smoke_study: dict) -> Path:
    """08 as the folder's one smoke study ran it (conftest.py), after the load test it explains."""
    return smoke_study["run"]


@pytest.fixture(scope="module")
def section(why_run: Path) -> dict:
    return json.loads((why_run / "summary.json").read_text())["ablation"]


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_one_stack_ran_every_configuration_as_an_instance_and_each_said_what_it_runs(
    section, why_run: Path
):
    planned = ablation_plan.configurations(
        SERVICE_NAMES, ablation_plan.chosen_factors(SMOKE), SMOKE.extras
    )
    said = {r["instance"]: r for r in section["started"]}
    assert set(said) == {c.name for c in planned}
    stack = json.loads((why_run / "ablation" / "stack" / "stack.json").read_text())
    assert set(stack["services"]) == {c.name for c in planned}
    for c in planned:
        assert said[c.name]["label"] == c.label and said[c.name]["service"] == c.service
    go = {r["label"]: r["gomaxprocs"] for r in said.values() if r["service"] == "go-api-onnx"}
    assert all(isinstance(v, int) and v >= 1 for v in go.values()), go
    assert "GOMAXPROCS as go-api-onnx logged it" in section["observations"]["gomaxprocs"]


def test_every_service_is_compared_at_one_rate_with_both_ends_and_its_honoured_flips(section):
    assert section["size"]["capacity_s"] == 0 and section["capacities"] == {}
    skipped = {(s["service"], s["label"]) for s in section["skipped"]}
    for record in section["comparisons"]:
        service, arms = record["name"], record["arms"]
        rate = section["rates"][service]
        assert record["rate"] == rate["rps"] >= 1 and rate["source"]
        assert not rate["published_known"]  # smoke searches no capacity
        assert list(arms)[:2] == ["tuned", "published"] and record["reference"] == "tuned"
        assert record["rounds"] >= 1
        for label, arm in arms.items():
            assert arm["target"] == f"{service}.{label.replace('_', '-').replace('=', '-')}"
            cpu = Estimate.from_record(arm["cpu_us_per_request"])
            assert finite(cpu.value) and cpu.value > 0, (service, label)
            assert finite(arm["p99_ms"]) and arm["working_set_bytes"] > 0
            assert (service, label) not in skipped
            if label != "tuned":
                assert arm["verdict"] in ("effect", "none", "undecided")
                assert finite(arm["change"]["value"]) and "p99_ms_change" in arm
    assert {r["name"] for r in section["comparisons"]} == set(SERVICE_NAMES)


def test_the_table_has_a_cell_for_every_flip_and_service_that_says_what_it_is(section):
    cells = {(e["service"], e["label"]): e for e in section["effects"]}
    chosen = set(SMOKE.factors)
    measured = {(r["name"], label) for r in section["comparisons"] for label in r["arms"]}
    for service in SERVICE_NAMES:
        applicable = {f.name for f in factors.applicable(service)} & chosen
        for name in chosen:
            cell = cells[(service, name)]
            assert cell["state"] in STATES
            if name not in applicable:
                assert cell["state"] == "not applicable" and cell["text"] == "—"
            elif cell["state"] == "not measured":
                assert "is not honoured" in cell["reason"] and cell["text"].startswith(
                    "not measured: "
                )
                assert (service, name) not in measured
            else:
                assert (service, name) in measured
                if cell["rounds"] < 3:  # a range, not a 95 % interval: never settled
                    assert cell["state"] == "undecided"
                    assert cell["text"].startswith("undecided (budget spent): ")
    # The Python services honour every published value they have but FRAMEWORK, which they
    # honour once they report it (tests/integration/test_published_config.py).
    for service in ("python-api-pkl", "python-api-onnx"):
        for name in chosen & {f.name for f in factors.applicable(service)} - {"framework"}:
            assert cells[(service, name)]["state"] != "not measured", (service, name)
    for name, sentence in section["sentences"].items():
        assert sentence.startswith(f"**{name}**")


def test_the_ends_are_paired_and_the_published_end_says_what_it_ignores(section):
    for service in SERVICE_NAMES:
        end = section["ends"][service]
        assert end["effect"]["label"] == "published"
        assert finite(end["effect"]["cpu_change"]["value"])
        assert end["capacity"] == {"tuned": None, "published": None}
        assert isinstance(end["published_not_honoured"], dict)
        assert set(end["misses"]) == {"tuned", "published"}


def test_the_record_and_its_windows_re_make_the_same_comparisons(section, why_run: Path):
    out = why_run / "ablation"
    record = ablation.Record.load(out)
    assert record.skipped == section["skipped"] and record.rates == section["rates"]
    remade = {c.name: c for c in ablation.comparisons(out)}
    for recorded in record.comparisons:
        again = remade[recorded["name"]]
        for label, arm in recorded["arms"].items():
            if label == "tuned":
                continue
            change = again.change(label).record()
            for key in ("value", "low", "high"):
                assert change[key] == pytest.approx(arm["change"][key]), (label, key)


def test_the_observations_are_computed_from_the_load_test(section):
    observations = section["observations"]
    modes = set(observations["rpm"]["modes"])
    assert modes == {"coupled", "isolated"}
    for mode in modes:
        for service in SERVICE_NAMES:
            rpm = observations["rpm"]["modes"][mode][service]
            assert rpm["requests"] > 0 and isinstance(rpm["fell_behind"], bool)
            p95 = observations["p95"][mode][service]
            assert p95["p95_k6_exact_ms"] > 0 and p95["p95_post_buckets_ms"] > 0
            assert 0 <= p95["points_inside_first_bucket"] <= 1
            memory = observations["memory"]["load_test"][mode][service]
            assert memory["peak_usage_mib"] >= memory["peak_working_set_mib"] > 0
    assert set(observations["rpm"]["at_rate"]["tuned"]) == set(SERVICE_NAMES)
    assert set(observations["memory"]["comparisons"]) == set(SERVICE_NAMES)
    coupled = observations["coupling"]
    assert {s: coupled[s]["requests"]["coupled"] for s in SERVICE_NAMES}
    assert observations["pickle"]["same_probabilities"] is True
    assert observations["profile"] == "smoke"


def test_the_figures_are_saved(why_run: Path):
    plots = {p.name for p in (why_run / "plots").glob("why_*.png")}
    assert {"why_factors_cpu.png", "why_factors_p99.png", "why_memory_coupled.png",
            "why_p95_isolated.png"} <= plots  # fmt: skip

"""Notebook 07, run headless through helpers.study at smoke size in the folder's one smoke
study (after the load test it explains); assert on the `ablation` section it wrote to
summary.json and on run_dir/ablation/ablation.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import sizing
from helpers.load import ablation, factors
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def why_run(smoke_study: dict) -> Path:
    """07 as the folder's one smoke study ran it (conftest.py), after the load test it explains."""
    return smoke_study["run"]


@pytest.fixture(scope="module")
def section(why_run: Path) -> dict:
    return json.loads((why_run / "summary.json").read_text())["ablation"]


def finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_the_tuned_end_is_measured_for_every_service_at_the_seeds_peak(section):
    assert section["size"]["repeats"] == 1 and section["size"]["ends"] == ["tuned"]
    assert section["observations"]["profile"] == "smoke"
    for service in SERVICE_NAMES:
        at = section["services"][service]["ends"]["tuned"]["rates"]["seed peak"]
        assert at["rate_rps"] == factors.SEED_PEAK_RPS
        for metric in ("service_cpu_us_per_request", "p95_ms", "p99_ms", "server_p95_ms",
                       "server_p99_ms", "memory_working_set_peak_bytes"):  # fmt: skip
            assert finite(at[metric]) and at[metric] > 0, (service, metric, at[metric])
        assert 0 <= at["throttled_ratio"] <= 1


def test_every_smoke_factor_is_measured_or_says_why_not_and_only_where_it_applies(section):
    chosen = sizing.for_profile("smoke").why.factors
    assert set(section["sentences"]) == set(chosen)
    for service in SERVICE_NAMES:
        recorded = section["services"][service]["factors"]
        applicable = {f.name for f in factors.applicable(service) if f.name in chosen}
        assert set(recorded) == applicable, service
        for name in applicable:
            flip = recorded[name]["tuned"]["published"]
            if "not_measured" in flip:
                assert "is not honoured" in flip["not_measured"], (service, name)
                assert service in section["sentences"][name]
            else:
                cpu = flip["seed peak"]["service_cpu_us_per_request"]
                assert finite(cpu["base"]) and finite(cpu["flipped"]), (service, name)
                assert cpu["change"] == pytest.approx(cpu["flipped"] - cpu["base"])
                assert cpu["within_spread"] is None  # one repeat: unknown
    # The Python services honour every published value they have.
    for service in ("python-api-pkl", "python-api-onnx"):
        for name, ends in section["services"][service]["factors"].items():
            assert "not_measured" not in ends["tuned"]["published"], (service, name)


def test_gomaxprocs_is_read_from_the_go_service_not_assumed(section, why_run: Path):
    said = section["sentences"]["gomaxprocs"]
    assert "GOMAXPROCS as go-api-onnx logged it" in said
    record = ablation.Result.load(why_run / "ablation" / factors.RECORD_NAME)
    logged = {r["value"] or r["end"]: r["gomaxprocs"] for r in record.started
              if r["service"] == "go-api-onnx" and r["factor"] in (None, "gomaxprocs")}  # fmt: skip
    assert set(logged) == {"tuned", "published"} and all(
        isinstance(v, int) for v in logged.values()
    )
    if logged["tuned"] == logged["published"]:
        assert "the same setting here" in said
    else:
        assert "differ here" in said
    assert section["services"]["go-api-onnx"]["ends"]["tuned"]["gomaxprocs"] == logged["tuned"]


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
    assert observations["rpm"]["at_seed_peak"]["tuned"].keys() == set(SERVICE_NAMES)
    coupled = observations["coupling"]
    assert {s: coupled[s]["requests"]["coupled"] for s in SERVICE_NAMES}
    assert observations["pickle"]["same_probabilities"] is True


def test_the_figures_are_saved(why_run: Path):
    plots = {p.name for p in (why_run / "plots").glob("why_*.png")}
    assert {"why_factors_cpu.png", "why_factors_p99.png", "why_memory_coupled.png",
            "why_p95_isolated.png"} <= plots  # fmt: skip

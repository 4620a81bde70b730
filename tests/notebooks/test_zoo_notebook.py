"""Notebook 09, run headless through helpers.study at smoke size in the folder's one smoke
study (after 01 → 02, whose artifacts it needs); assert on what it wrote to run_dir/zoo/zoo.json
and to summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest

from helpers import sizing
from helpers.model import manifest
from helpers.serving.instances import SERVICE_NAMES
from helpers.zoo import classifiers, serving

SMOKE = sizing.for_profile("smoke").zoo

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def zoo_run(smoke_study: dict) -> dict[str, Path]:
    """09 as the folder's one smoke study ran it (conftest.py), after 01 → 08."""
    run = smoke_study["run"]
    return {
        "run": run,
        "artifacts": smoke_study["artifacts"],
        "record": run / "zoo" / "zoo.json",
    }


@pytest.fixture(scope="module")
def record(zoo_run: dict[str, Path]) -> dict:
    return json.loads(zoo_run["record"].read_text())


def test_every_model_is_a_row_converted_or_not(record: dict) -> None:
    assert record["profile"] == "smoke"
    assert record["models"] == list(classifiers.KNOWN)
    conversion = {row["model"]: row for row in record["conversion"]}
    assert set(conversion) == set(classifiers.KNOWN)
    assert conversion["label_spreading"]["converts"] is False
    assert "LabelSpreading" in conversion["label_spreading"]["why_not"]
    for name in ("random_forest", "hist_gradient_boosting", "svc", "mlp", "knn"):
        assert conversion[name]["converts"] is True
        assert conversion[name]["served_parity_passed"] is True


def test_parity_rows_per_model_and_input_type(record: dict) -> None:
    parity = {(row["model"], row["input_type"]): row for row in record["parity"]}
    assert len(parity) == 2 * len(classifiers.KNOWN)
    served = [row for row in parity.values() if row["served"]]
    assert len(served) == 5
    for row in served:
        assert row["label_mismatches"] == 0 and row["max_abs_proba_diff"] <= 1e-5
    assert parity[("hist_gradient_boosting", "float")]["threshold_rows_mismatches"] > 0
    assert parity[("hist_gradient_boosting", "double")]["served"] is True


def test_zoo_artifacts_verify_and_say_their_input_type(zoo_run: dict[str, Path]) -> None:
    for name in classifiers.KNOWN:
        model_dir = classifiers.zoo_dir(zoo_run["artifacts"]) / name
        names = classifiers.verify(model_dir)
        recorded = manifest.load(model_dir / manifest.MANIFEST_NAME)
        if "model.onnx" in names:
            assert recorded["onnx"]["input_type"] in ("float", "double")
            assert recorded["onnx"]["probabilities_output"] == "probabilities"


def test_costs_measured_in_the_service_environments(record: dict) -> None:
    assert record["bench_iterations"] == 100  # the smoke size reached the notebook
    by_model = {row["model"]: row for row in record["costs"]}
    for name, row in by_model.items():
        for runtime, memory in row["memory"].items():
            assert memory["pandas_importable"] is False, (name, runtime)
            assert "/.venvs/" in memory["interpreter"]
            assert 0 < memory["rss_imported_bytes"] <= memory["rss_loaded_bytes"]
            assert memory["read_and_hash_ms"] > 0 and memory["cold_load_ms"] > 0
        if row["onnx_bytes"] is not None:
            for stats in row["latency_us"].values():
                assert stats["calls"] == 100 and 0 < stats["median_us"] <= stats["p99_us"]
    assert by_model["label_spreading"]["onnx_bytes"] is None


def test_safety_demonstrations_recorded(record: dict) -> None:
    safety = record["safety"]
    assert safety["unpickled_without_check"]["marker_written"] is True
    assert safety["service_refusal"]["exit_status"] == 2
    assert safety["service_refusal"]["marker_written"] is False
    assert "sha256" in safety["service_refusal"]["stderr_last_line"]
    assert safety["skops_untrusted"]["refused"] is True
    assert safety["skops_untrusted"]["marker_after_refusal"] is False
    assert all(v.startswith("refused") for v in safety["onnx_external_data"].values())
    assert [row["format"] for row in safety["formats"]] == ["pickle", "skops", "ONNX"]
    assert len(record["findings"]) >= 6


def test_every_model_was_served_beside_logistic_regression(record: dict) -> None:
    """One comparison per service, logistic regression its reference; the pickle service
    serves every model, the ONNX services every converted one — a measured arm with a paired
    change, or a row saying why not (never an omission)."""
    section = record["serving"]
    assert section["reference"] == serving.REFERENCE
    assert 1 <= section["rate_rps"] <= SMOKE.serving_rate
    by_service = {c["service"]: c for c in section["comparisons"]}
    assert list(by_service) == list(SERVICE_NAMES)
    not_served = {(r["model"], r["service"]): r for r in section["not_served"]}
    converted = {r["model"] for r in record["conversion"] if r["converts"]}
    for service, comparison in by_service.items():
        assert comparison["rate"] == section["rate_rps"] and comparison["rounds"] >= 1
        arms = comparison["arms"]
        assert next(iter(arms)) == serving.REFERENCE
        assert arms[serving.REFERENCE]["cpu_us_per_request"]["value"] > 0
        for model in record["models"]:
            if service != "python-api-pkl" and model not in converted:
                assert "model.onnx" in not_served[(model, service)]["reason"]
                continue
            arm = arms[model]
            assert arm["target"] == serving.instance_name(service, model)
            assert arm["cpu_us_per_request"]["value"] > 0 and arm["p95_ms"]["value"] > 0
            multiple, change = arm["multiple"]["value"], arm["change"]["value"]
            assert math.isclose(multiple, change + 1, rel_tol=1e-9)
            assert arm["verdict"] in ("effect", "none", "undecided") and arm["sentence"]
    assert set(not_served) == {
        (m, s) for m in record["models"] if m not in converted for s in SERVICE_NAMES[1:]
    }


def test_the_heaviest_model_has_a_capacity_and_a_cold_start_per_service(record: dict) -> None:
    heaviest = record["heaviest"]
    latencies = {
        row["model"]: row["sklearn_median_us"]
        for row in record["cost_table"]
        if row["sklearn_median_us"] is not None
    }
    assert heaviest["model"] == max(latencies, key=latencies.get)
    expected = {serving.instance_name(s, heaviest["model"]) for s in SERVICE_NAMES}
    assert set(heaviest["capacity"]) == expected  # the heaviest model converts in the zoo
    for found in heaviest["capacity"].values():
        assert found["steps"], found
        display, bound = found["display"], found["bound"]
        if bound == "none passed":
            assert display.startswith("< ")
        elif bound != "service":
            assert display.startswith("≥ ") and f"({bound}-bound)" in display
    cold = heaviest["cold_start"]
    assert set(cold) == expected | set(SERVICE_NAMES)
    for name, figures in cold.items():
        assert figures["attempts"] == SMOKE.cold_starts
        assert figures["total_s"]["value"] > 0 and figures["working_set_bytes"]["value"] > 0
        assert figures["model"] == (
            serving.REFERENCE if name in SERVICE_NAMES else heaviest["model"]
        )


def test_summary_carries_the_zoo_and_its_findings(zoo_run: dict[str, Path], record: dict) -> None:
    summary = json.loads((zoo_run["run"] / "summary.json").read_text())
    assert summary["zoo"]["serving"] == record["serving"]
    said = summary["findings"]["zoo"]
    assert len(said) == 2 and said[0].startswith(f"At {record['serving']['rate_rps']} req/s")
    assert record["heaviest"]["model"] in said[1]
    assert said == record["findings"][-2:]


def test_report_has_plots_and_no_errors(zoo_run: dict[str, Path]) -> None:
    for plot in ("parity.png", "costs.png", "serving.png"):
        assert (zoo_run["run"] / "zoo" / plot).stat().st_size > 0
    executed = nbformat.read(zoo_run["run"] / "09_beyond_logreg.ipynb", as_version=4)
    errors = [
        output
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors

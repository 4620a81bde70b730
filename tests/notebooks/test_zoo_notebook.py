"""Notebook 08, run headless through helpers.study at smoke size in the folder's one smoke
study (after 01 → 02, whose artifacts it needs); assert on what it wrote to run_dir/zoo/zoo.json."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers.model import manifest
from helpers.zoo import classifiers

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def zoo_run(smoke_study: dict) -> dict[str, Path]:
    """08 as the folder's one smoke study ran it (conftest.py), after 01 → 07."""
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


def test_every_model_was_served_by_the_services_that_can_load_it(record: dict) -> None:
    """The pickle service serves every model; the ONNX services every converted one — each a
    measured row, or a row saying why not (never an omission)."""
    rows = {(r["model"], r["service"]): r for r in record["serving"]}
    for model in record["models"]:
        assert (model, "python-api-pkl") in rows, model
    converted = [r["model"] for r in record["conversion"] if r.get("converts")]
    for model in set(converted):
        for service in ("python-api-onnx", "go-api-onnx"):
            row = rows[(model, service)]
            assert row.get("problem") or row["cpu_us_per_request"] > 0, row
    heaviest = record["heaviest"]
    assert heaviest["model"] in record["models"]
    assert {"python-api-pkl"} <= set(heaviest["capacity"])


def test_report_has_plots_and_no_errors(zoo_run: dict[str, Path]) -> None:
    for plot in ("parity.png", "costs.png"):
        assert (zoo_run["run"] / "zoo" / plot).stat().st_size > 0
    executed = nbformat.read(zoo_run["run"] / "09_beyond_logreg.ipynb", as_version=4)
    errors = [
        output
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors

"""Notebooks 01 → 02, run headless through helpers.study (the folder's one smoke study);
assert on the values they wrote."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pytest

from helpers.model import manifest, parity

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def study_run(smoke_study: dict) -> dict[str, Path]:
    """01 and 02 as the folder's one smoke study ran them (conftest.py)."""
    return {"run": smoke_study["run"], "artifacts": smoke_study["artifacts"]}


def test_manifest_written_by_01_and_02(study_run: dict[str, Path], model_artifacts: Path) -> None:
    manifest_path = study_run["artifacts"] / manifest.MANIFEST_NAME
    written = manifest.load(manifest_path)
    for name in ("model.pkl", "model.onnx", "model_zipmap.onnx"):
        manifest.verify(manifest_path, study_run["artifacts"] / name)
    assert written["training"]["test_accuracy"] >= 0.9
    # same seed and split as the helpers trained directly: the same model choice
    direct = manifest.load(model_artifacts / manifest.MANIFEST_NAME)["training"]
    assert written["training"]["best_params"] == direct["best_params"]
    assert written["training"]["cv_auc"] == pytest.approx(direct["cv_auc"])
    assert written["onnx"]["input_name"] == "float_input"
    recorded = json.loads((study_run["run"] / "model" / "training.json").read_text())
    assert recorded["training"] == written["training"]
    assert json.loads((study_run["run"] / "model" / "manifest.json").read_text()) == written


def test_parity_dict_written_by_02(study_run: dict[str, Path]) -> None:
    report = json.loads((study_run["run"] / "model" / "parity.json").read_text())
    assert report["passed"] is True
    assert set(report["files"]) == {"model.onnx", "model_zipmap.onnx"}
    for totals in report["files"].values():
        assert set(totals) == set(parity.SUMMARY_KEYS)
        assert totals["rows_checked"] >= 150 + 1000
        assert totals["label_mismatches"] == 0
        assert totals["max_abs_proba_diff"] <= parity.TOLERANCE


def test_sizes_and_latency_recorded_by_02(study_run: dict[str, Path]) -> None:
    record = json.loads((study_run["run"] / "model" / "convert.json").read_text())
    artifacts = manifest.load(study_run["artifacts"] / manifest.MANIFEST_NAME)["artifacts"]
    assert record["file_bytes"] == {name: entry["bytes"] for name, entry in artifacts.items()}
    assert record["bench_iterations"] == 300  # the smoke profile's size reached the notebook
    for stats in record["latency_us"].values():
        assert stats["calls"] == 300 and 0 < stats["median_us"] <= stats["p99_us"]
    assert (study_run["run"] / "model" / "single_row_latency.png").stat().st_size > 0


def test_reports_show_parity_table_and_graph(study_run: dict[str, Path]) -> None:
    for name in ("01_train_model", "02_convert_to_onnx"):
        executed = nbformat.read(study_run["run"] / f"{name}.ipynb", as_version=4)
        errors = [
            output
            for cell in executed.cells
            for output in cell.get("outputs", [])
            if output.get("output_type") == "error"
        ]
        assert errors == []
    html = (study_run["run"] / "02_convert_to_onnx.html").read_text()
    assert "label_mismatches" in html and "max_abs_proba_diff" in html
    # nbconvert embeds SVG outputs as base64 <img> data URLs
    images = [
        base64.b64decode(match).decode()
        for match in re.findall(
            r'<img[^>]+src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html
        )
    ]
    assert any("LinearClassifier" in svg and "ZipMap" not in svg for svg in images)
    assert any("ZipMap" in svg for svg in images)
    assert "Netron view is skipped" in html  # headless: no live server started

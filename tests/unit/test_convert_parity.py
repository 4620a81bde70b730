"""helpers.model.convert + .parity: both ONNX files agree with the pickle; a broken one fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers.model import convert, manifest, parity, train


@pytest.fixture(scope="module")
def report(model_artifacts: Path) -> parity.ParityReport:
    return parity.run(model_artifacts)


def test_both_onnx_files_match_the_pickle(report: parity.ParityReport) -> None:
    assert set(report.summary) == {"model.onnx", "model_zipmap.onnx"}
    for totals in report.summary.values():
        assert set(totals) == set(parity.SUMMARY_KEYS)
        assert totals["label_mismatches"] == 0
        assert 0 <= totals["max_abs_proba_diff"] <= parity.TOLERANCE
    parity.check(report)  # does not raise


def test_row_sets_cover_random_and_missing_values(report: parity.ParityReport) -> None:
    table = report.table[report.table["onnx_file"] == "model.onnx"].set_index("row_set")
    assert table.loc["all 150 iris rows", "rows"] == 150
    assert table.loc["1000 random rows in training range", "rows"] == 1000
    n_test = table.loc["test set", "rows"]
    assert table.loc["one feature missing", "rows"] == 4 * n_test
    assert table.loc["two features missing", "rows"] == 6 * n_test
    assert table.loc["all four missing", "rows"] == n_test
    assert report.summary["model.onnx"]["rows_checked"] == table["rows"].sum()


def test_random_rows_stay_within_training_ranges(model_artifacts: Path) -> None:
    recorded = manifest.load(model_artifacts / manifest.MANIFEST_NAME)
    rows = parity.row_sets(recorded, n_random=2000, seed=7)["2000 random rows in training range"]
    for column, name in enumerate(recorded["feature_names"]):
        limits = recorded["feature_ranges"][name]
        assert limits["min"] <= rows[:, column].min() <= rows[:, column].max() <= limits["max"]


def test_zipmap_output_is_decoded_in_class_order(model_artifacts: Path) -> None:
    model = train.load_model(model_artifacts)
    X = np.array([[5.1, np.nan, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    labels, proba = parity.onnx_predict(
        convert.load_session(model_artifacts / "model_zipmap.onnx"), X, model.classes_
    )
    assert proba.shape == (2, 3)
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)


def perturbed(model_path: Path, op_type: str, attribute: str, delta: float) -> bytes:
    """The ONNX model with one weight changed (this graph keeps its weights in attributes)."""
    model = onnx.load(str(model_path))
    node = next(n for n in model.graph.node if n.op_type == op_type)
    values = next(a for a in node.attribute if a.name == attribute).floats
    values[0] += delta
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("name", "delta"), [("model.onnx", 1e-3), ("model_zipmap.onnx", 5.0)], ids=["tiny", "large"]
)
def test_a_perturbed_model_fails_the_check(model_artifacts: Path, name: str, delta: float) -> None:
    model = train.load_model(model_artifacts)
    sets = parity.row_sets(manifest.load(model_artifacts / manifest.MANIFEST_NAME))
    broken = convert.load_session(
        perturbed(model_artifacts / name, "LinearClassifier", "coefficients", delta)
    )
    table = parity.compare(model, broken, sets, name)
    bad = parity.ParityReport(table, parity.summarize(table))
    assert not bad.passed
    with pytest.raises(AssertionError, match=f"{name} on '"):
        parity.check(bad)


def test_nan_probabilities_count_as_a_failure(model_artifacts: Path) -> None:
    model = train.load_model(model_artifacts)
    sets = parity.row_sets(manifest.load(model_artifacts / manifest.MANIFEST_NAME))
    broken = convert.load_session(
        perturbed(model_artifacts / "model.onnx", "Scaler", "scale", float("nan"))
    )
    table = parity.compare(model, broken, sets, "model.onnx")
    assert np.isinf(table["max_abs_proba_diff"]).all()  # NaN never slips under the tolerance
    # and the check itself treats a NaN difference as a failure, even with equal labels
    table["max_abs_proba_diff"], table["label_mismatches"] = float("nan"), 0
    with pytest.raises(AssertionError, match="max"):
        parity.check(parity.ParityReport(table, parity.summarize(table)))


def test_parity_refuses_a_tampered_onnx_file(model_artifacts_copy: Path) -> None:
    path = model_artifacts_copy / "model.onnx"
    path.write_bytes(perturbed(path, "LinearClassifier", "intercepts", 1.0))
    with pytest.raises(manifest.ArtifactMismatch):
        parity.run(model_artifacts_copy)


def test_saved_summary_round_trips(report: parity.ParityReport, tmp_path: Path) -> None:
    saved = json.loads(parity.save(report, tmp_path / "model" / "parity.json").read_text())
    assert saved["passed"] is True
    assert saved["files"] == json.loads(json.dumps(report.summary))

"""helpers.zoo.classifiers: every zoo model trains, converts (or says why not), passes parity, and
writes artifacts in the seed's schema; a perturbed graph fails parity; unknown names stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from helpers.model import convert, parity
from helpers.model import manifest as manifest_io
from helpers.zoo import classifiers, conversion, report

CONVERTIBLE = ("random_forest", "hist_gradient_boosting", "svc", "mlp", "knn")


@pytest.fixture(scope="module")
def built(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole zoo at smoke size, next to a copy of the seed's manifest (the split)."""
    seed_dir = tmp_path_factory.mktemp("zoo-seed")
    (seed_dir / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    models = classifiers.build_all(list(classifiers.KNOWN), seed_dir, profile="smoke", n_random=300)
    return {zm.spec.name: zm for zm in models}


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown zoo model 'xgboost'") as error:
        classifiers.resolve(["svc", "xgboost"])
    for name in classifiers.KNOWN:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="known models"):
        classifiers.resolve([])


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_each_convertible_model_is_served_by_a_graph_that_passes_parity(
    built: dict, name: str
) -> None:
    zm = built[name]
    assert zm.served is not None and zm.served.passed, report.parity_summary([zm])
    table = zm.served.parity.set_index("row_set")
    for row_set in ("test set", "all 150 iris rows", "one feature missing", "all four missing"):
        assert table.loc[row_set, "label_mismatches"] == 0
        assert table.loc[row_set, "max_abs_proba_diff"] <= parity.TOLERANCE
    assert table.loc["300 random rows in training range", "rows"] == 300


@pytest.mark.parametrize("name", [*CONVERTIBLE, "label_spreading"])
def test_manifest_has_the_seed_schema_and_verifies(built: dict, name: str) -> None:
    zm = built[name]
    recorded = manifest_io.load(zm.manifest_path)
    for key in ("feature_names", "class_labels", "feature_ranges", "artifacts", "versions"):
        assert key in recorded
    assert {"seed", "test_size", "best_params", "cv_auc", "test_accuracy"} <= set(
        recorded["training"]
    )
    expected = {"model.pkl", "model.onnx"} if zm.served else {"model.pkl"}
    assert set(classifiers.verify(zm.artifacts_dir)) == expected
    if zm.served:
        section = recorded["onnx"]
        assert section["serving_file"] == "model.onnx"
        assert section["probabilities_output"] == convert.PROBABILITIES_OUTPUT
        assert section["input_type"] == zm.served.input_type
        session = convert.load_session(zm.artifacts_dir / "model.onnx")
        assert session.get_inputs()[0].name == section["input_name"]
        declared = {"float": "tensor(float)", "double": "tensor(double)"}[section["input_type"]]
        assert session.get_inputs()[0].type == declared
        assert section["probabilities_output"] in [o.name for o in session.get_outputs()]


def test_a_tampered_zoo_model_fails_verification(built: dict, tmp_path: Path) -> None:
    source = built["svc"].artifacts_dir
    copy = tmp_path / "svc"
    copy.mkdir()
    for item in source.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(manifest_io.ArtifactMismatch, match=r"model\.onnx"):
        classifiers.verify(copy)


def _perturbed(model_path: Path) -> bytes:
    """The graph with its first float initializer or float-list attribute nudged by 0.5."""
    model = onnx.load(str(model_path))
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype.kind == "f" and values.size:
            changed = values.copy()
            changed.flat[0] += 0.5
            init.CopyFrom(onnx.numpy_helper.from_array(changed, init.name))
            return model.SerializeToString()
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in ("class_weights", "coefficients") and attribute.floats:
                for i in range(len(attribute.floats)):
                    attribute.floats[i] += 0.5
                return model.SerializeToString()
    raise AssertionError(f"nothing to perturb in {model_path}")


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_a_perturbed_model_fails_parity(built: dict, name: str) -> None:
    zm = built[name]
    sets = conversion.parity_sets(zm.model, manifest_io.load(zm.manifest_path), n_random=300)
    broken = convert.load_session(_perturbed(zm.artifacts_dir / "model.onnx"))
    table = parity.compare(zm.model, broken, sets, name, reference_dtype=np.float64)
    assert not parity.ParityReport(table, parity.summarize(table)).passed


class _NoConverter(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has never heard of (a thin wrapper of logistic regression)."""

    def fit(self, X, y):
        self.inner_ = LogisticRegression().fit(X, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict(self, X):
        return self.inner_.predict(X)

    def predict_proba(self, X):
        return self.inner_.predict_proba(X)


def test_a_model_that_does_not_convert_is_a_row_with_the_reason(
    built: dict, model_artifacts: Path, tmp_path: Path
) -> None:
    (tmp_path / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    spec = classifiers.ModelSpec(
        "no_converter",
        "a custom classifier",
        lambda p, s: classifiers._pipeline(_NoConverter(), True),
    )
    zm = classifiers.build(spec, tmp_path)
    assert zm.served is None
    assert not (zm.artifacts_dir / "model.onnx").exists()
    row = report.conversion_table([zm, built["svc"]]).loc["no_converter"]
    assert not row["converts"]
    assert "_NoConverter" in row["why_not"] and "float:" in row["why_not"]
    summary = report.parity_summary([zm])
    assert set(summary.index.get_level_values("input_type")) == set(classifiers.INPUT_TYPE_ORDER)
    assert summary["error"].str.contains("_NoConverter").all()
    recorded = manifest_io.load(zm.manifest_path)["onnx"]
    assert (
        recorded["converted"] is False and "_NoConverter" in recorded["attempts"]["float"]["error"]
    )
    assert "1 does not" in report.conversion_finding([zm, built["svc"]])
    # the zoo's own non-convertible member is a row too, never an omission
    assert not report.conversion_table([built["label_spreading"]]).loc[
        "label_spreading", "converts"
    ]


def test_float32_flips_tree_decisions_and_the_double_graph_fixes_boosting(built: dict) -> None:
    summary = report.parity_summary([built["hist_gradient_boosting"], built["random_forest"]])
    hgb_float = summary.loc[("hist_gradient_boosting", "float")]
    hgb_double = summary.loc[("hist_gradient_boosting", "double")]
    assert hgb_float["threshold_rows_mismatches"] > 0 and not hgb_float["passed"]
    assert hgb_double["passed"] and "double_thresholds" in hgb_double["repairs"]
    assert built["hist_gradient_boosting"].served.input_type == "double"
    # the forest is the other way round: its trees compare float32 features
    assert summary.loc[("random_forest", "float"), "passed"]
    assert not summary.loc[("random_forest", "double"), "passed"]
    finding = report.float32_finding(list(built.values()))
    assert "hist_gradient_boosting's float32 graph disagrees" in finding
    assert "random_forest" in finding


def test_threshold_rows_sit_on_the_split_thresholds(built: dict) -> None:
    model = built["random_forest"].model
    pairs = parity.split_thresholds(model)
    assert pairs and all(0 <= f < 4 for f, _ in pairs)
    base = np.array([[5.0, 3.0, 4.0, 1.0]])
    rows = parity.threshold_rows(model, base)
    assert len(rows) == 4 * len(pairs)
    feature, threshold = pairs[0]
    assert rows[0, feature] == threshold and rows[1, feature] == round(threshold, 2)
    assert rows[2, feature] > threshold > rows[3, feature]
    assert len(parity.threshold_rows(built["svc"].model, base)) == 0  # no trees, no rows


def test_the_svc_is_platt_scaled_without_deprecated_parameters(built: dict):
    """scikit-learn 1.9 deprecates SVC(probability=True) (removed in 1.11): the zoo's SVC is
    calibrated by CalibratedClassifierCV instead, trains without a warning, and converts."""
    svc = built["svc"]
    assert svc.estimator == "CalibratedClassifierCV"
    assert svc.result.deprecation_warnings == []
    assert svc.served is not None and svc.served.passed

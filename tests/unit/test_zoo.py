"""helpers.zoo: every zoo model trains, converts (or says why not), passes parity, and writes
artifacts in the seed's schema; a perturbed graph fails parity; unknown names stop. Serving
the zoo: the instances and the rows of pairs left out, the stack's failed instance named, the
common rate, each model against logistic regression (paired rounds given as data), the
heaviest model's searches and sentence; the cost probe loads only the bytes it hashed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from helpers.intervals import Estimate
from helpers.load import interleave
from helpers.load.search import Search
from helpers.load.stepping import Step
from helpers.load.windows import Window
from helpers.model import convert, parity
from helpers.model import manifest as manifest_io
from helpers.serving.instances import SERVICE_NAMES
from helpers.serving.protocol import Limits
from helpers.zoo import (
    classifiers,
    conversion,
    costs,
    heaviest,
    report,
    safety,
    serving,
    serving_report,
)

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


# --- serving every model beside logistic regression (helpers.zoo.serving, heaviest, report) ---


PLAN = {
    "random_forest": (Path("/zoo/random_forest"), list(SERVICE_NAMES)),
    "label_spreading": (Path("/zoo/label_spreading"), ["python-api-pkl"]),
}


def test_every_pair_the_plan_allows_is_an_instance_beside_the_references() -> None:
    made = {i.name: i for i in serving.instances(PLAN)}
    assert list(made)[:3] == list(SERVICE_NAMES)  # the seed's model on every service first
    forest = made["python-api-onnx.random-forest"]
    assert forest.service == "python-api-onnx"
    assert forest.artifacts_dir == Path("/zoo/random_forest")
    assert serving.model_of(forest) == "random_forest"
    assert serving.model_of(made["go-api-onnx"]) == serving.REFERENCE
    assert "python-api-pkl.label-spreading" in made
    assert "go-api-onnx.label-spreading" not in made
    assert all(not i.exports_metrics for i in made.values())  # telemetry off everywhere
    assert {i.cpu_cores for i in made.values()} == {0.5}
    left_out = serving.unservable(PLAN)
    assert {(r["model"], r["service"]) for r in left_out} == {
        ("label_spreading", "python-api-onnx"),
        ("label_spreading", "go-api-onnx"),
    }
    assert all("model.onnx" in r["reason"] for r in left_out)


def test_the_instance_a_stack_could_not_start_is_named_with_why() -> None:
    message = (
        "python-api-onnx.knn did not become ready: http://127.0.0.1:5/healthz before ready: "
        "process exited with status 2\n--- last lines of /run/stack/logs/x.log ---\n"
        "starting\nmodel file missing: /zoo/knn/model.onnx\n"
    )
    names = ["python-api-onnx", "python-api-onnx.knn", "python-api-onnx.knn2"]
    assert serving.failed_instance(message, names) == "python-api-onnx.knn"
    assert serving.failed_instance("prometheus did not become ready", names) is None
    said = serving.reason(message)
    assert said == "process exited with status 2: model file missing: /zoo/knn/model.onnx"
    # uvicorn logs its orderly shutdown after the error: the error is the reason
    port_taken = (
        "python-api-pkl.knn did not become ready: http://127.0.0.1:5/healthz before ready: "
        "process exited with status 3\n--- last lines of x.log ---\n"
        "INFO:     Application startup complete.\n"
        "ERROR:    [Errno 98] error while attempting to bind on address "
        "('127.0.0.1', 5): address already in use\n"
        "INFO:     Waiting for application shutdown.\nINFO:     Application shutdown complete.\n"
    )
    said = serving.reason(port_taken)
    assert said.startswith("process exited with status 3: ERROR:") and serving.TRANSIENT in said


def test_the_common_rate_leaves_the_slowest_model_half_a_quota() -> None:
    table = pd.DataFrame(
        {"sklearn_median_us": [100.0, 20_000.0, None], "onnx_median_us": [20.0, 50.0, None]},
        index=["svc", "random_forest", "label_spreading"],
    )
    assert serving.common_rate(table, 50, 0.5) == 12  # 0.5 × 0.5 core / 20 ms
    assert serving.common_rate(table.iloc[:1], 50, 0.5) == 50  # the ceiling holds
    assert serving.common_rate(table.iloc[2:], 50, 0.5) == 50  # nothing measured
    assert serving.common_rate(table * 1000, 50, 0.5) == 1


def _window(target: str, label: str, round_: int, cpu_us: float, p95_ms: float) -> Window:
    return Window(
        target=target, label=label, rate=20, batch=1, round=round_, started_at=float(round_),
        ended_at=round_ + 1.0, planned_s=1.0, requests=20, ok=20, p50_ms=p95_ms / 2,
        p95_ms=p95_ms, p99_ms=p95_ms, max_ms=p95_ms, cpu_s=20 * cpu_us / 1e6, periods=10,
        throttled=0, working_set_bytes=60e6, oom_kills=0, generator_cpu_s=0.01,
        cpu_counter_at_start=0.0, cpu_with_tail_s=20 * cpu_us / 1e6, tail_s=5.0,
    )  # fmt: skip


def _served(costs_us: dict[str, float], rounds: int = 5) -> list[interleave.Comparison]:
    """python-api-pkl serving the reference and each model at the given µs per request,
    every round drifting for all arms alike."""
    running = {
        i.name: i
        for i in serving.instances({m: (Path(f"/zoo/{m}"), ["python-api-pkl"]) for m in costs_us})
        if i.service == "python-api-pkl"
    }
    compared = serving.comparisons(running, rate=20)
    cost_of = {serving.REFERENCE: 300.0, **costs_us}
    rng = np.random.default_rng(3)
    for r in range(rounds):
        drift = 1 + rng.uniform(-0.2, 0.2)
        compared[0].rounds.append(
            {
                arm.label: _window(
                    arm.target,
                    arm.label,
                    r,
                    drift * rng.normal(1, 0.01) * cost_of[arm.label],
                    3.0 + (cost_of[arm.label] - 300.0) / 900.0,
                )
                for arm in compared[0].arms
            }
        )
    return compared


def test_each_model_is_held_against_logistic_regression_on_its_service() -> None:
    compared = _served({"random_forest": 3000.0, "knn": 300.0})
    assert [c.name for c in compared] == ["python-api-pkl"]
    assert [a.label for a in compared[0].arms] == [serving.REFERENCE, "random_forest", "knn"]
    not_served = serving.unservable({"knn": (Path("/zoo/knn"), ["python-api-pkl"])})
    table = serving_report.serving_table(compared, not_served, 0.1)
    assert table.index[0] == (serving.REFERENCE, "python-api-pkl")
    multiple = table.loc[("random_forest", "python-api-pkl"), "× logistic regression"]
    assert float(multiple.split("×")[0]) == pytest.approx(10, rel=0.05), multiple
    assert "5 rounds" in multiple
    assert table.loc[("knn", "python-api-pkl"), "CPU change"].startswith("no effect larger")
    assert "model.onnx" in table.loc[("knn", "go-api-onnx"), "problem"]
    sentence = serving_report.serving_sentence(compared, not_served, 0.1)
    assert "costliest model is random_forest at 10.0×" in sentence
    assert "knn no more than ±10%" in sentence and "Not served: knn by python-api-onnx" in sentence
    section = serving_report.serving_section(compared, not_served, 20, 0.1)
    forest = section["comparisons"][0]["arms"]["random_forest"]
    assert forest["verdict"] == "effect"
    assert 9.5 < forest["multiple"]["value"] < 10.5
    assert 2.5 < forest["p95_change_ms"]["value"] < 3.5  # 3 ms more than the reference's p95
    assert section["rate_rps"] == 20 and section["not_served"] == not_served


def test_the_heaviest_search_starts_light_from_what_its_comparison_measured() -> None:
    compared = _served({"random_forest": 5000.0})
    target = "python-api-pkl.random-forest"
    assert heaviest.predicted_rps(compared, target, 0.5) == pytest.approx(100, rel=0.25)
    assert np.isnan(heaviest.predicted_rps(compared, "go-api-onnx.random-forest", 0.5))
    limits = {
        target: Limits(0.5, 128 << 20, True),
        "go-api-onnx.random-forest": Limits(0.5, 128 << 20, True),
    }
    found = heaviest.searches([target, "go-api-onnx.random-forest"], limits, compared, 20, 0.1)
    by_target = {s.target: s for s in found}
    assert 25 <= by_target[target].pilot_rate <= 40  # a third of what the quota holds
    assert by_target["go-api-onnx.random-forest"].pilot_rate == 20  # no measure: 3 × rate / 3
    assert all(s.precision == 0.1 and s.max_rate >= 10 * s.pilot_rate for s in found)


def test_the_heaviest_sentence_says_bounds_and_cold_start_beside_the_reference() -> None:
    none_passed = Search("python-api-pkl.random-forest", 0.5, pilot_rate=10)
    failing = Step("python-api-pkl.random-forest", 10)
    failing.windows = [
        _window("python-api-pkl.random-forest", "", i, 9000.0, 80.0) for i in range(4)
    ]
    none_passed.record(failing)
    starts = {
        "python-api-pkl.random-forest": {"total_s": Estimate(3.2, 3.0, 3.5, 5, "starts").record()},
        "python-api-pkl": {"total_s": Estimate(2.9, 2.8, 3.0, 5, "starts").record()},
    }
    models = {"python-api-pkl.random-forest": "random_forest", "python-api-pkl": serving.REFERENCE}
    sentence = serving_report.heaviest_sentence("random_forest", [none_passed], starts, models)
    assert "in req/s: python-api-pkl < 10 (none passed)." in sentence
    assert "python-api-pkl 3.20 s (95 %: 3.00–3.50, 5 starts) against 2.90 s" in sentence
    section = serving_report.heaviest_section("random_forest", [none_passed], starts, models)
    assert section["capacity"]["python-api-pkl.random-forest"]["bound"] == "none passed"
    assert section["cold_start"]["python-api-pkl"]["model"] == serving.REFERENCE


def test_the_cost_probe_refuses_a_file_swapped_after_the_manifest(
    model_artifacts: Path, tmp_path: Path
) -> None:
    """The probe's child hashes the bytes it would load: a pickle put in place of the model
    is refused there, before unpickling (its marker is never written)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    marker = tmp_path / "marker.txt"
    safety.malicious_pickle(folder / "model.pkl", marker)
    with pytest.raises(costs.ProbeFailed, match="sha256"):
        costs.memory_after_load(folder, "pickle")
    assert not marker.exists()
    with pytest.raises(manifest_io.ArtifactMismatch):
        costs.warm_load_ms(folder, 1, ("pickle",))
    assert not marker.exists()

"""helpers.model.train: the seed's grid, reproducible, accurate, and described by its manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from helpers.model import manifest, train


def test_best_params_are_reproducible_run_to_run() -> None:
    first, second = train.train(), train.train()
    assert first.search.best_params_ == second.search.best_params_
    assert first.search.best_score_ == second.search.best_score_
    X = first.data.X_test
    np.testing.assert_array_equal(first.model.predict_proba(X), second.model.predict_proba(X))


def test_accuracy_and_the_seed_grid() -> None:
    result = train.train()
    assert result.test_accuracy >= 0.9
    assert set(result.search.best_params_) == set(train.SEED_PARAM_GRID)
    # the penalty deprecation is collected once, not once per fit
    assert len(result.deprecation_warnings) == 1
    assert "penalty" in result.deprecation_warnings[0]


def test_split_is_stratified_and_seeded() -> None:
    a, b = train.load_split(seed=1), train.load_split(seed=2)
    assert not np.array_equal(a.X_test, b.X_test)
    assert np.bincount(a.y_test).tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="test_size"):
        train.load_split(test_size=1.5)


def test_modern_grid_gives_the_same_scores() -> None:
    table = train.compare_with_modern_grid(train.train())
    np.testing.assert_allclose(table["seed grid AUC"], table["modern grid AUC"])


def test_manifest_records_ranges_labels_and_split(model_artifacts: Path) -> None:
    written = manifest.load(model_artifacts / manifest.MANIFEST_NAME)
    data = train.load_split(written["training"]["test_size"], written["training"]["seed"])
    assert written["feature_names"] == train.FEATURE_NAMES
    assert written["class_labels"] == ["iris-setosa", "iris-versicolor", "iris-virginica"]
    for column, name in enumerate(train.FEATURE_NAMES):
        expected = {"min": data.X_train[:, column].min(), "max": data.X_train[:, column].max()}
        assert written["feature_ranges"][name] == pytest.approx(expected)
        # training ranges lie within the full data set's ranges
        assert load_iris().data[:, column].min() <= expected["min"]
    assert written["training"]["n_train"] + written["training"]["n_test"] == 150
    assert set(written["artifacts"]) == {"model.pkl", "model.onnx", "model_zipmap.onnx"}
    assert {"scikit-learn", "onnxruntime", "python"} <= set(written["versions"])


def test_the_default_split_is_the_posts_and_reproduces_its_accuracy() -> None:
    result = train.train()
    assert result.test_accuracy == pytest.approx(train.PUBLISHED_TEST_ACCURACY)
    assert "equals the post's" in train.compared_with_published(result)
    other = train.train(seed=42)
    assert "another split" in train.compared_with_published(other)

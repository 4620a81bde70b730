"""Train the seed's pipeline on iris and save it as a pickle plus a manifest.

The pipeline and grid are the original post's, unchanged: SimpleImputer → StandardScaler →
LogisticRegression in GridSearchCV. Iris comes from scikit-learn's bundled copy (no download).
"""

from __future__ import annotations

import math
import pickle
import platform
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from helpers.model import manifest as manifest_io

FEATURE_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# Iris' own target names prefixed as in the seed's API ("iris-setosa", ...).
CLASS_LABELS = [f"iris-{name}" for name in load_iris().target_names]

SEED_PARAM_GRID = {
    "estimator__solver": ["newton-cg"],
    "estimator__tol": [1e-4, 3e-3, 1e-2],
    "estimator__penalty": [None, "l2"],
}
# What the seed's grid means in scikit-learn ≥ 1.8, where `penalty` is deprecated:
# penalty=None is C=inf, penalty='l2' is the default l1_ratio=0 with C=1.
MODERN_PARAM_GRID = {
    "estimator__solver": ["newton-cg"],
    "estimator__tol": [1e-4, 3e-3, 1e-2],
    "estimator__C": [np.inf, 1.0],
}
PENALTY_DEPRECATION = "'penalty' was deprecated"
# The post's split: train_test_split(..., stratify=target, test_size=0.2, random_state=14);
# on it the post reports test accuracy 0.9666666666666667 (29 of 30 held-out rows).
PUBLISHED_SEED = 14
PUBLISHED_TEST_ACCURACY = 0.9666666666666667


@dataclass(frozen=True)
class Dataset:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class TrainingResult:
    search: GridSearchCV
    data: Dataset
    deprecation_warnings: list[str]
    # How the split was made, recorded so later stages can rebuild the same test set.
    seed: int = PUBLISHED_SEED
    test_size: float = 0.2
    stratify: bool = True

    @property
    def model(self) -> Pipeline:
        return self.search.best_estimator_

    @property
    def test_accuracy(self) -> float:
        return float((self.model.predict(self.data.X_test) == self.data.y_test).mean())


def load_split(
    test_size: float = 0.2, seed: int = PUBLISHED_SEED, stratify: bool = True
) -> Dataset:
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a fraction between 0 and 1, got {test_size!r}")
    X, y = load_iris(return_X_y=True)
    parts = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None
    )
    return Dataset(*parts)


def build_search(param_grid: dict[str, list] | None = None) -> GridSearchCV:
    pipeline = Pipeline(
        [
            ("imputer", SimpleImputer(strategy="mean", keep_empty_features=True)),
            ("scaler", StandardScaler()),
            ("estimator", LogisticRegression()),
        ]
    )
    return GridSearchCV(
        pipeline,
        param_grid or SEED_PARAM_GRID,
        scoring={"AUC": "roc_auc_ovr"},
        refit="AUC",
        cv=5,
        error_score="raise",
    )


def train(
    test_size: float = 0.2, seed: int = PUBLISHED_SEED, stratify: bool = True
) -> TrainingResult:
    """Fit the seed's grid; the penalty deprecation is collected once instead of per fit."""
    data = load_split(test_size, seed, stratify)
    search = build_search()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(data.X_train, data.y_train)
    penalty = sorted({str(w.message) for w in caught if PENALTY_DEPRECATION in str(w.message)})
    for other in caught:
        if PENALTY_DEPRECATION not in str(other.message):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return TrainingResult(search, data, penalty, seed, test_size, stratify)


def library_versions() -> dict[str, str]:
    names = ["scikit-learn", "numpy", "scipy", "skl2onnx", "onnx", "onnxruntime"]
    return {"python": platform.python_version(), **{name: version(name) for name in names}}


def _plain(value: Any) -> Any:
    """JSON-friendly best params (numpy scalars and inf become plain Python values)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def save(result: TrainingResult, artifacts_dir: Path) -> dict[str, Any]:
    """Write model.pkl and manifest.json; returns the manifest."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    model_path = artifacts_dir / "model.pkl"
    with model_path.open("wb") as handle:
        pickle.dump(result.model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    X_train = result.data.X_train
    manifest_path = artifacts_dir / manifest_io.MANIFEST_NAME
    if manifest_path.exists():
        manifest_path.unlink()  # a new model invalidates every artifact of the old one
    return manifest_io.record_artifacts(
        manifest_path,
        model_path,
        feature_names=FEATURE_NAMES,
        class_labels=CLASS_LABELS,
        feature_ranges={
            name: {"min": float(X_train[:, i].min()), "max": float(X_train[:, i].max())}
            for i, name in enumerate(FEATURE_NAMES)
        },
        versions=library_versions(),
        training={
            "seed": result.seed,
            "test_size": result.test_size,
            "stratify": result.stratify,
            "best_params": {k: _plain(v) for k, v in result.search.best_params_.items()},
            "cv_auc": float(result.search.best_score_),
            "test_accuracy": result.test_accuracy,
            "n_train": len(result.data.y_train),
            "n_test": len(result.data.y_test),
        },
    )


def load_model(artifacts_dir: Path) -> Pipeline:
    """Unpickle model.pkl only after its sha256 matches the manifest."""
    model_path = artifacts_dir / "model.pkl"
    # The very bytes that matched: hashing the path and opening it again would unpickle a
    # file swapped in between.
    return pickle.loads(
        manifest_io.read_verified(artifacts_dir / manifest_io.MANIFEST_NAME, model_path)
    )


def cv_table(search: GridSearchCV) -> pd.DataFrame:
    """The grid's cross-validation results, one row per parameter combination, best first."""
    results = pd.DataFrame(search.cv_results_)
    params = [c for c in results.columns if c.startswith("param_")]
    table = results[[*params, "mean_test_AUC", "std_test_AUC", "rank_test_AUC", "mean_fit_time"]]
    table = table.rename(columns=lambda c: c.removeprefix("param_estimator__"))
    table = table.assign(penalty=_spelled(table["penalty"]))
    return table.sort_values(["rank_test_AUC", "tol"]).reset_index(drop=True)


def compare_with_modern_grid(result: TrainingResult) -> pd.DataFrame:
    """Refit with MODERN_PARAM_GRID on the same split: the CV AUCs must be the same numbers.

    Shows that dropping `penalty` (before scikit-learn 1.10 removes it) changes nothing.
    """
    modern = build_search(MODERN_PARAM_GRID).fit(result.data.X_train, result.data.y_train)
    seed_auc = pd.DataFrame(result.search.cv_results_)
    modern_auc = pd.DataFrame(modern.cv_results_)
    return pd.DataFrame(
        {
            "tol": seed_auc["param_estimator__tol"],
            "seed grid: penalty": _spelled(seed_auc["param_estimator__penalty"]),
            "modern grid: C": modern_auc["param_estimator__C"],
            "seed grid AUC": seed_auc["mean_test_AUC"],
            "modern grid AUC": modern_auc["mean_test_AUC"],
        }
    )


def _spelled(values: pd.Series) -> list[str]:
    """penalty=None as the text 'None' (pandas would show the grid's None as NaN)."""
    return ["None" if value is None or value != value else str(value) for value in values]


def compared_with_published(result: TrainingResult) -> str:
    """One computed sentence: this run's test accuracy against the post's, and why they may
    differ (another split, or a scikit-learn that picks another grid point on a tie)."""
    same_split = (result.seed, result.test_size, result.stratify) == (PUBLISHED_SEED, 0.2, True)
    here = f"test accuracy {result.test_accuracy:.4f}"
    if not same_split:
        return (
            f"This run's {here} is on another split (seed {result.seed}, "
            f"test_size {result.test_size}) than the post's (random_state={PUBLISHED_SEED}, "
            f"stratified, 20 %), where the post reports {PUBLISHED_TEST_ACCURACY:.4f}."
        )
    if math.isclose(result.test_accuracy, PUBLISHED_TEST_ACCURACY):
        return (
            f"On the post's split (random_state={PUBLISHED_SEED}, stratified, 20 %) this run's "
            f"{here} equals the post's {PUBLISHED_TEST_ACCURACY:.4f}: the published accuracy is "
            f"reproduced (best parameters {result.search.best_params_})."
        )
    return (
        f"On the post's split this run's {here} differs from the post's "
        f"{PUBLISHED_TEST_ACCURACY:.4f} (scikit-learn 1.6.1 there, {version('scikit-learn')} "
        "here): "
        f"the grid search chose {result.search.best_params_}."
    )

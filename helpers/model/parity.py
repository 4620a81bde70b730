"""Prove that the ONNX files compute what the pickle computes, on every kind of row served.

The services answer with the ONNX model, so "can we drop Python?" is only yes if the ONNX
graph gives the same label and the same probabilities (within float32 rounding) as the
pickle — including for rows with missing features, which the pipeline imputes. Both sides
get the same float32 rows: that is what a JSON number becomes in the ONNX services, and it
keeps input rounding out of the comparison so only the model's arithmetic is compared.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from helpers import files
from helpers.model import convert, train
from helpers.model import manifest as manifest_io

TOLERANCE = 1e-5  # max |p_onnx - p_sklearn|: float32 arithmetic stays far below it
ONNX_FILES = ("model.onnx", "model_zipmap.onnx")
SUMMARY_KEYS = ("rows_checked", "label_mismatches", "max_abs_proba_diff")


@dataclass(frozen=True)
class ParityReport:
    """One row per (ONNX file, row set) in `table`; the totals per file in `summary`."""

    table: pd.DataFrame
    summary: dict[str, dict[str, Any]]
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return not _failures(self.table, self.tolerance)


def row_sets(manifest: dict[str, Any], n_random: int = 1000, seed: int | None = None) -> dict:
    """The inputs to compare on, named for the table: real rows, random rows, missing values.

    The test set is rebuilt from the split recorded in the manifest; random rows are drawn
    uniformly within the training min/max (as the load generator does); missing-value rows
    blank every single feature, every pair and all four of each test row.
    """
    if n_random < 1:
        raise ValueError(f"n_random must be at least 1, got {n_random!r}")
    try:
        split = manifest["training"]
        names = manifest["feature_names"]
        ranges = manifest["feature_ranges"]
        data = train.load_split(split["test_size"], split["seed"], split.get("stratify", True))
    except KeyError as missing:
        raise KeyError(f"manifest lacks {missing}: re-run notebook 01 to rewrite it") from None
    rng = np.random.default_rng(split["seed"] if seed is None else seed)
    low = np.array([ranges[name]["min"] for name in names])
    high = np.array([ranges[name]["max"] for name in names])
    sets = {
        "test set": data.X_test,
        "all 150 iris rows": load_iris().data,
        f"{n_random} random rows in training range": rng.uniform(low, high, (n_random, len(names))),
    }
    for size, title in [(1, "one feature"), (2, "two features"), (len(names), "all four")]:
        blanked = []
        for columns in itertools.combinations(range(len(names)), size):
            rows = data.X_test.copy()
            rows[:, list(columns)] = np.nan
            blanked.append(rows)
        sets[f"{title} missing"] = np.vstack(blanked)
    return sets


ONNX_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def input_dtype(session: ort.InferenceSession) -> type[np.generic]:
    """float32 or float64: the element type the graph's (single) input declares."""
    declared = session.get_inputs()[0].type
    if declared not in ONNX_INPUT_DTYPES:
        raise ValueError(f"expected a tensor(float) or tensor(double) input, got {declared}")
    return ONNX_INPUT_DTYPES[declared]


def split_thresholds(model: Pipeline) -> list[tuple[int, float]]:
    """The (feature, threshold) pairs a tree model splits on, in input-feature space.

    Forests keep theirs in each tree's `tree_`, histogram gradient boosting in `_predictors`.
    Empty for models without trees, and for pipelines that transform the features before
    the trees other than by imputing (a scaler would move the thresholds away from inputs).
    """
    steps = model.steps if isinstance(model, Pipeline) else [("estimator", model)]
    if not all(isinstance(step, SimpleImputer) for _, step in steps[:-1]):
        return []
    estimator = steps[-1][1]
    pairs: set[tuple[int, float]] = set()
    trees = [t.tree_ for t in getattr(estimator, "estimators_", []) if hasattr(t, "tree_")]
    if hasattr(estimator, "tree_"):
        trees.append(estimator.tree_)
    for tree in trees:
        split = tree.feature >= 0
        pairs |= set(zip(tree.feature[split].tolist(), tree.threshold[split].tolist(), strict=True))
    for iteration in getattr(estimator, "_predictors", []):
        for predictor in iteration:
            nodes = predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]
            pairs |= set(
                zip(nodes["feature_idx"].tolist(), nodes["num_threshold"].tolist(), strict=True)
            )
    return sorted(pairs)


def threshold_rows(model: Pipeline, base_rows: np.ndarray) -> np.ndarray:
    """Rows that sit on the model's split thresholds: each base row with one feature set to a
    threshold t, to t written with two decimals (as a client would send 2.45), and to the
    float64 numbers just above and below t. Where float32 rounding moves an input or a
    threshold across the other, a tree takes the other branch; these rows find that.
    Empty ([0, n_features]) for models without trees."""
    base_rows = np.asarray(base_rows, dtype=np.float64)
    rows = []
    for feature, threshold in split_thresholds(model):
        for value in (
            threshold,
            round(threshold, 2),
            np.nextafter(threshold, np.inf),
            np.nextafter(threshold, -np.inf),
        ):
            placed = base_rows.copy()
            placed[:, feature] = value
            rows.append(placed)
    return np.vstack(rows) if rows else np.empty((0, base_rows.shape[1]))


def onnx_predict(
    session: ort.InferenceSession,
    X: np.ndarray,
    classes: np.ndarray,
    probabilities_output: str | None = None,
) -> tuple:
    """Labels and an [N, n_classes] probability array from either ONNX file.

    model.onnx returns a plain tensor; model_zipmap.onnx returns a list of {class: p} maps
    (ZipMap), decoded here in the order of the pickle's `classes_`. Rows are cast to the
    graph's input type (float32 for the seed's files), as the ONNX services do. Without
    `probabilities_output` the first two outputs are label and probabilities (skl2onnx's).
    """
    input_name = session.get_inputs()[0].name
    feed = {input_name: np.asarray(X).astype(input_dtype(session))}
    if probabilities_output is None:
        labels, probabilities = session.run(None, feed)[:2]
    else:
        names = [o.name for o in session.get_outputs()]
        labels, probabilities = session.run([names[0], probabilities_output], feed)
    if isinstance(probabilities, list):
        probabilities = np.array([[row[c] for c in classes] for row in probabilities])
    return np.asarray(labels), np.asarray(probabilities, dtype=np.float64)


def compare(
    model: Pipeline,
    session: ort.InferenceSession,
    sets: dict,
    name: str,
    reference_dtype: type[np.generic] = np.float32,
    probabilities_output: str | None = None,
) -> pd.DataFrame:
    """Label mismatches and max |Δp| per row set for one ONNX session.

    `reference_dtype=np.float32` (notebook 02): both sides get the same float32 rows, so only
    the model's arithmetic is compared. `np.float64`: the pickle gets the rows as float64 (what
    the pickle service feeds it from JSON) and ONNX gets them cast to its input type (what the
    ONNX services feed it), so the comparison includes what casting to float32 does.
    """
    rows = []
    for set_name, X in sets.items():
        X_ref = np.asarray(X, dtype=reference_dtype).astype(np.float64)
        expected_labels = model.predict(X_ref)
        expected_proba = model.predict_proba(X_ref)
        labels, proba = onnx_predict(session, X_ref, model.classes_, probabilities_output)
        diff = np.abs(proba - expected_proba) if proba.shape == expected_proba.shape else None
        # NaN compares False with everything: count it as an infinite difference, not a pass.
        worst = np.inf if diff is None else float(np.nan_to_num(diff, nan=np.inf).max())
        rows.append(
            {
                "onnx_file": name,
                "row_set": set_name,
                "rows": len(X_ref),
                "label_mismatches": int((labels != expected_labels).sum()),
                "max_abs_proba_diff": worst,
            }
        )
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Totals per ONNX file: {file: {rows_checked, label_mismatches, max_abs_proba_diff}}."""
    return {
        str(name): {
            "rows_checked": int(group["rows"].sum()),
            "label_mismatches": int(group["label_mismatches"].sum()),
            "max_abs_proba_diff": float(group["max_abs_proba_diff"].max()),
        }
        for name, group in table.groupby("onnx_file", sort=False)
    }


def run(
    artifacts_dir: Path, n_random: int = 1000, seed: int | None = None, files=ONNX_FILES
) -> ParityReport:
    """Compare the pickle with each ONNX file in `artifacts_dir`, all verified by sha256 first."""
    manifest_path = artifacts_dir / manifest_io.MANIFEST_NAME
    manifest = manifest_io.load(manifest_path)
    model = train.load_model(artifacts_dir)
    sets = row_sets(manifest, n_random, seed)
    tables = []
    for name in files:
        graph = manifest_io.read_verified(manifest_path, artifacts_dir / name)  # loaded as hashed
        tables.append(compare(model, convert.load_session(graph), sets, name))
    table = pd.concat(tables, ignore_index=True)
    return ParityReport(table, summarize(table))


def _failures(table: pd.DataFrame, tolerance: float) -> list[str]:
    bad = table[(table["label_mismatches"] > 0) | ~(table["max_abs_proba_diff"] <= tolerance)]
    return [
        f"{row.onnx_file} on '{row.row_set}': {row.label_mismatches} of {row.rows} labels "
        f"differ, max |Δp| = {row.max_abs_proba_diff:.3g}"
        for row in bad.itertuples()
    ]


def check(report: ParityReport) -> None:
    """Fail loudly (AssertionError) if any label differs or any |Δp| exceeds the tolerance."""
    failures = _failures(report.table, report.tolerance)
    if failures:
        raise AssertionError(
            f"ONNX and pickle disagree (tolerance |Δp| ≤ {report.tolerance:g}, labels equal):\n  "
            + "\n  ".join(failures)
        )


def save(report: ParityReport, path: Path) -> Path:
    """Write the per-file summary (plus tolerance and verdict) as JSON for later notebooks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"tolerance": report.tolerance, "passed": report.passed, "files": report.summary}
    files.write_json(path, payload)
    return path

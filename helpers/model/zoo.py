"""The model zoo (notebook 08): other classifiers on the seed's features, split and contract.

Each model is a pipeline like the seed's (SimpleImputer first, so the contract's missing
features work; a scaler where the estimator is sensitive to scale), trained on the split the
seed's manifest records, saved and converted by the same code as notebooks 01–02 into its own
artifacts folder `<artifacts_dir>/zoo/<name>/` (model.pkl, model.onnx, manifest.json: the
schema of train.save + convert.convert, hashes included), so all three services serve it
unchanged. Sizes are chosen so the costs differ (hundreds of trees, a two-layer MLP, kNN
keeping its training rows); the smoke profile shrinks them.

Conversion is tried per input type ("float" first, then "double"): plain skl2onnx first,
then with `helpers.model.repairs` when the plain graph does not convert or load. Each attempt
is checked for parity on notebook 02's row sets plus, for tree models, rows on the split
thresholds, against the pickle fed float64 (what the pickle service computes). The served
model.onnx is the first attempt that passes; the manifest's `onnx.input_type` says which. A
model that does not convert is a row with skl2onnx's reason, never an omission.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from helpers.model import convert, parity, repairs, train
from helpers.model import manifest as manifest_io

ZOO_DIRNAME = "zoo"
INPUT_TYPE_ORDER = ("float", "double")  # float32 first: what the seed's services feed
PROFILES = ("seed", "quick", "smoke")
THRESHOLD_BASE_STEP = 6  # every 6th test row is a base row for the split-threshold rows
REASON_CHARS = 300


def _imputer() -> SimpleImputer:
    return SimpleImputer(strategy="mean", keep_empty_features=True)


def _pipeline(estimator: BaseEstimator, scaled: bool) -> Pipeline:
    steps: list[tuple[str, Any]] = [("imputer", _imputer())]
    if scaled:
        steps.append(("scaler", StandardScaler()))
    return Pipeline([*steps, ("estimator", estimator)])


@dataclass(frozen=True)
class ModelSpec:
    """One zoo member: how to build its (unfitted) pipeline for a profile and a seed."""

    name: str
    description: str
    make: Callable[[str, int], Pipeline]
    input_types: tuple[str, ...] = INPUT_TYPE_ORDER

    def pipeline(self, profile: str, seed: int) -> Pipeline:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        return self.make(profile, seed)


def _sized(profile: str, full: int, smoke: int) -> int:
    return smoke if profile == "smoke" else full


KNOWN: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "random_forest",
            "RandomForestClassifier, 300 fully grown trees (smoke: 20)",
            lambda profile, seed: _pipeline(
                RandomForestClassifier(n_estimators=_sized(profile, 300, 20), random_state=seed),
                scaled=False,
            ),
        ),
        ModelSpec(
            "hist_gradient_boosting",
            "HistGradientBoostingClassifier, 200 boosting iterations × 3 classes (smoke: 10)",
            lambda profile, seed: _pipeline(
                HistGradientBoostingClassifier(
                    max_iter=_sized(profile, 200, 10), early_stopping=False, random_state=seed
                ),
                scaled=False,
            ),
        ),
        ModelSpec(
            "svc",
            "SVC, RBF kernel, probability=True (Platt scaling, 5-fold inside fit)",
            lambda profile, seed: _pipeline(SVC(probability=True, random_state=seed), scaled=True),
        ),
        ModelSpec(
            "mlp",
            "MLPClassifier, two hidden layers of 100 ReLU units (smoke: one of 16)",
            lambda profile, seed: _pipeline(
                MLPClassifier(
                    hidden_layer_sizes=(16,) if profile == "smoke" else (100, 100),
                    max_iter=_sized(profile, 2000, 300),
                    random_state=seed,
                ),
                scaled=True,
            ),
        ),
        ModelSpec(
            "knn",
            "KNeighborsClassifier, 10 neighbours (keeps all training rows)",
            lambda profile, seed: _pipeline(KNeighborsClassifier(n_neighbors=10), scaled=True),
        ),
        ModelSpec(
            "label_spreading",
            "LabelSpreading, kNN kernel (semi-supervised; skl2onnx has no converter)",
            lambda profile, seed: _pipeline(LabelSpreading(kernel="knn", n_neighbors=7), True),
        ),
    )
}


def resolve(names: Iterable[str | ModelSpec]) -> list[ModelSpec]:
    """Specs for `names` (or specs passed as they are); an unknown name lists the known ones."""
    specs = []
    for name in names:
        if isinstance(name, ModelSpec):
            specs.append(name)
        elif name in KNOWN:
            specs.append(KNOWN[name])
        else:
            raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(KNOWN)}")
    if not specs:
        raise ValueError(f"no zoo model chosen; known models: {', '.join(KNOWN)}")
    return specs


def zoo_dir(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / ZOO_DIRNAME


# --- training ------------------------------------------------------------------------------


def seed_split(seed_artifacts_dir: Path) -> dict[str, Any]:
    """The seed's split (seed, test_size, stratify) from its manifest, written by notebook 01."""
    recorded = manifest_io.load(Path(seed_artifacts_dir) / manifest_io.MANIFEST_NAME)
    try:
        training = recorded["training"]
        return {
            "seed": training["seed"],
            "test_size": training["test_size"],
            "stratify": training.get("stratify", True),
        }
    except KeyError as missing:
        raise KeyError(f"seed manifest lacks training {missing}: re-run notebook 01") from None


def train_model(spec: ModelSpec, split: dict[str, Any], profile: str) -> train.TrainingResult:
    """Fit the spec's pipeline on the split, through GridSearchCV as the seed is (one point:
    the sizes are chosen, not tuned), so the manifest records the same training fields."""
    data = train.load_split(split["test_size"], split["seed"], split["stratify"])
    search = GridSearchCV(
        spec.pipeline(profile, split["seed"]),
        {},
        scoring={"AUC": "roc_auc_ovr"},
        refit="AUC",
        cv=5,
        error_score="raise",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(data.X_train, data.y_train)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return train.TrainingResult(
        search, data, messages, split["seed"], split["test_size"], split["stratify"]
    )


# --- conversion and parity -----------------------------------------------------------------


@dataclass
class Attempt:
    """One input type's conversion: the graph and its parity, or why there is none."""

    input_type: str
    onnx_model: onnx.ModelProto | None = None
    error: str | None = None  # why no graph (after repairs, if any applied)
    plain_error: str | None = None  # why plain skl2onnx did not do, when repairs were needed
    repairs: list[str] = field(default_factory=list)
    parity: pd.DataFrame | None = None

    @property
    def converted(self) -> bool:
        return self.onnx_model is not None

    @property
    def label_mismatches(self) -> int | None:
        return None if self.parity is None else int(self.parity["label_mismatches"].sum())

    @property
    def max_abs_proba_diff(self) -> float | None:
        return None if self.parity is None else float(self.parity["max_abs_proba_diff"].max())

    @property
    def passed(self) -> bool:
        return self.parity is not None and bool(
            self.label_mismatches == 0 and self.max_abs_proba_diff <= parity.TOLERANCE
        )


def reason(error: BaseException) -> str:
    """The innermost cause of a conversion error, one line: skl2onnx wraps the real reason
    (a protobuf TypeError, say) in a message that dumps every attribute of the node."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    line = f"{type(error).__name__}: {text}"
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _loadable(onnx_model: onnx.ModelProto) -> onnx.ModelProto:
    onnx.checker.check_model(onnx_model, full_check=True)
    convert.load_session(onnx_model.SerializeToString())  # raises if the runtime cannot run it
    return onnx_model


def convert_attempt(model: Pipeline, input_type: str) -> Attempt:
    """Convert as skl2onnx does by itself; if that graph fails, once more with the repairs."""
    attempt = Attempt(input_type)
    try:
        attempt.onnx_model = _loadable(convert.to_onnx_model(model, False, input_type))
        return attempt
    except Exception as error:  # any converter or runtime error is a finding, not a crash
        attempt.plain_error = reason(error)
    converters, shapes, applied = repairs.custom_converters(model, input_type)
    try:
        repaired = convert.to_onnx_model(model, False, input_type, converters, shapes)
        if repairs.double_thresholds(repaired, model):
            applied.append("double_thresholds")
        if not applied:
            raise RuntimeError("no repair applies")
        attempt.onnx_model = _loadable(repaired)
        attempt.repairs = applied
    except Exception as error:
        attempt.error = attempt.plain_error if not applied else reason(error)
    return attempt


def parity_sets(model: Pipeline, recorded: dict[str, Any], n_random: int) -> dict[str, Any]:
    """Notebook 02's row sets, plus rows on the split thresholds for tree models."""
    sets = parity.row_sets(recorded, n_random)
    base = sets["test set"][::THRESHOLD_BASE_STEP]
    on_thresholds = parity.threshold_rows(model, base)
    if len(on_thresholds):
        sets["rows on split thresholds"] = on_thresholds
    return sets


def check_parity(attempt: Attempt, model: Pipeline, sets: dict[str, Any]) -> Attempt:
    if attempt.converted:
        session = convert.load_session(attempt.onnx_model.SerializeToString())
        attempt.parity = parity.compare(
            model,
            session,
            sets,
            attempt.input_type,
            reference_dtype=np.float64,
            probabilities_output=convert.PROBABILITIES_OUTPUT,
        )
    return attempt


def choose_served(attempts: Sequence[Attempt]) -> Attempt | None:
    """The first attempt that passes parity; else the converted one that disagrees least
    (served, and flagged by `parity_passed: false` in the manifest); None if none converted."""
    for attempt in attempts:
        if attempt.passed:
            return attempt
    converted = [a for a in attempts if a.converted]
    if not converted:
        return None
    return min(converted, key=lambda a: (a.label_mismatches, a.max_abs_proba_diff))


# --- one model end to end ------------------------------------------------------------------


@dataclass
class ZooModel:
    spec: ModelSpec
    artifacts_dir: Path
    result: train.TrainingResult
    attempts: list[Attempt]
    served: Attempt | None

    @property
    def manifest_path(self) -> Path:
        return self.artifacts_dir / manifest_io.MANIFEST_NAME

    @property
    def model(self) -> Pipeline:
        return self.result.model

    @property
    def estimator(self) -> str:
        return type(self.model.steps[-1][1]).__name__


def _onnx_section(served: Attempt | None, attempts: Sequence[Attempt]) -> dict[str, Any]:
    tried = {
        a.input_type: {
            "converted": a.converted,
            "error": a.error,
            "plain_error": a.plain_error,
            "repairs": a.repairs,
            "label_mismatches": a.label_mismatches,
            "max_abs_proba_diff": a.max_abs_proba_diff,
            "parity_passed": a.passed,
        }
        for a in attempts
    }
    if served is None:
        return {"converted": False, "attempts": tried}
    return {
        "input_name": convert.INPUT_NAMES[served.input_type],
        "target_opset": convert.TARGET_OPSET,
        "ml_opset": convert.ML_OPSET,
        "serving_file": "model.onnx",
        "outputs": {"label": "int64 [N]", "probabilities": "float32 [N, n_classes]"},
        "probabilities_output": convert.PROBABILITIES_OUTPUT,
        "input_type": served.input_type,
        "repairs": served.repairs,
        "parity_passed": served.passed,
        "converted": True,
        "attempts": tried,
    }


def build(
    spec: ModelSpec | str,
    seed_artifacts_dir: Path,
    out_dir: Path | None = None,
    profile: str = "quick",
    n_random: int = 1000,
) -> ZooModel:
    """Train, save, convert and check one zoo model into `out_dir` (default
    <seed_artifacts_dir>/zoo/<name>/); returns everything the tables are made of."""
    (spec,) = resolve([spec])
    out_dir = Path(out_dir) if out_dir else zoo_dir(seed_artifacts_dir) / spec.name
    split = seed_split(seed_artifacts_dir)
    result = train_model(spec, split, profile)
    recorded = train.save(result, out_dir)  # model.pkl + a fresh manifest (old files invalid)
    for stale in out_dir.glob("*.onnx"):
        stale.unlink()
    sets = parity_sets(result.model, recorded, n_random)
    attempts = [
        check_parity(convert_attempt(result.model, t), result.model, sets) for t in spec.input_types
    ]
    served = choose_served(attempts)
    written = []
    if served is not None:
        path = out_dir / "model.onnx"
        onnx.save(served.onnx_model, path)
        written.append(path)
    manifest_io.record_artifacts(
        out_dir / manifest_io.MANIFEST_NAME,
        *written,
        onnx=_onnx_section(served, attempts),
        zoo={
            "name": spec.name,
            "description": spec.description,
            "estimator": type(result.model.steps[-1][1]).__name__,
            "profile": profile,
            "training_warnings": result.deprecation_warnings,
        },
    )
    return ZooModel(spec, out_dir, result, attempts, served)


def build_all(
    names: Iterable[str | ModelSpec],
    seed_artifacts_dir: Path,
    profile: str = "quick",
    n_random: int = 1000,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> list[ZooModel]:
    """`build` for each name (checked first, so a typo stops before any training)."""
    specs = resolve(names)
    return [build(spec, seed_artifacts_dir, None, profile, n_random) for spec in progress(specs)]


def verify(model_dir: Path) -> list[str]:
    """Every artifact the zoo model's manifest lists, verified by sha256; their names."""
    recorded = manifest_io.load(Path(model_dir) / manifest_io.MANIFEST_NAME)
    names = sorted(recorded["artifacts"])
    for name in names:
        manifest_io.verify(Path(model_dir) / manifest_io.MANIFEST_NAME, Path(model_dir) / name)
    return names


# --- tables --------------------------------------------------------------------------------

"""The model zoo (notebook 09): other classifiers on the seed's features, split and contract.

Each model is a pipeline like the seed's (SimpleImputer first, so the contract's missing
features work; a scaler where the estimator is sensitive to scale), trained on the split the
seed's manifest records, saved and converted by the same code as notebooks 01–02 into its own
artifacts folder `<artifacts_dir>/zoo/<name>/` (model.pkl, model.onnx, manifest.json: the
schema of train.save + convert.convert, hashes included), so all three services serve it
unchanged. Sizes are chosen so the costs differ (hundreds of trees, a two-layer MLP, kNN
keeping its training rows); the smoke profile shrinks them.

Conversion (`helpers.zoo.conversion`) is tried per input type, "float" first, then
"double"; the served model.onnx is the first attempt that passes parity, and the manifest's
`onnx.input_type` says which. A model that does not convert is a row with skl2onnx's reason,
never an omission.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from helpers.model import manifest as manifest_io
from helpers.model import train
from helpers.zoo import conversion

ZOO_DIRNAME = "zoo"
INPUT_TYPE_ORDER = ("float", "double")  # float32 first: what the seed's services feed
PROFILES = ("seed", "quick", "smoke")


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
            "SVC, RBF kernel, Platt-scaled by CalibratedClassifierCV (5-fold, ensemble=False)",
            lambda profile, seed: _pipeline(
                # scikit-learn 1.9's replacement for the deprecated SVC(probability=True)
                CalibratedClassifierCV(SVC(random_state=seed), ensemble=False),
                scaled=True,
            ),
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


# --- one model end to end ------------------------------------------------------------------


@dataclass
class ZooModel:
    spec: ModelSpec
    artifacts_dir: Path
    result: train.TrainingResult
    attempts: list[conversion.Attempt]
    served: conversion.Attempt | None

    @property
    def manifest_path(self) -> Path:
        return self.artifacts_dir / manifest_io.MANIFEST_NAME

    @property
    def model(self) -> Pipeline:
        return self.result.model

    @property
    def estimator(self) -> str:
        return type(self.model.steps[-1][1]).__name__


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
    sets = conversion.parity_sets(result.model, recorded, n_random)
    attempts = [
        conversion.check_parity(conversion.convert_attempt(result.model, t), result.model, sets)
        for t in spec.input_types
    ]
    served = conversion.choose_served(attempts)
    written = []
    if served is not None:
        path = out_dir / "model.onnx"
        onnx.save(served.onnx_model, path)
        written.append(path)
    manifest_io.record_artifacts(
        out_dir / manifest_io.MANIFEST_NAME,
        *written,
        onnx=conversion.manifest_section(served, attempts),
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

"""The pickled scikit-learn pipeline as a `Predictor`.

The pipeline is fed a float64 numpy array, never a DataFrame: it was fitted on an array, a
DataFrame would make scikit-learn warn about feature names on every call, and building one
roughly doubles the cost of a single-row prediction. pandas is not even installed in this
service's environment — when it is, scikit-learn imports it (and scipy.stats) and the process
no longer fits in its 128 MiB.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from importlib.metadata import version

import numpy as np
from iris_serving.artifact import VerifiedArtifact
from iris_serving.settings import ConfigError


class SklearnPredictor:
    """`predict_proba` of the unpickled pipeline (SimpleImputer → StandardScaler → LogReg)."""

    def __init__(self, pipeline: object) -> None:
        if not hasattr(pipeline, "predict_proba"):
            raise ConfigError(f"the pickle holds a {type(pipeline).__name__}, not a classifier")
        self._predict_proba = pipeline.predict_proba
        self.runtime = f"scikit-learn {version('scikit-learn')}"

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self._predict_proba(rows)


def load_predictor(artifact: VerifiedArtifact, env: Mapping[str, str]) -> SklearnPredictor:
    """Unpickle a file whose sha256 already matched the manifest (the artifact proves it)."""
    try:
        with artifact.path.open("rb") as handle:
            pipeline = pickle.load(handle)  # safe only because the hash was checked first
    except Exception as error:  # a matching hash with an unloadable pickle: wrong environment
        raise ConfigError(
            f"{artifact.path} matches the manifest but cannot be unpickled here "
            f"({type(error).__name__}: {error}); expected scikit-learn "
            f"{artifact.manifest.get('versions', {}).get('scikit-learn', '?')}"
        ) from None
    return SklearnPredictor(pipeline)

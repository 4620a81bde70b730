"""The pickled scikit-learn classifier as a `Predictor`.

Any fitted classifier with `predict_proba` (a Pipeline ending in logistic regression, a
forest, boosting, SVC with probability=True, an MLP, kNN…) whose `classes_` map to the
manifest's labels: integer classes are class ids 0..n-1 (index = class_id, as training on
iris' integer target gives), string classes are the labels themselves, in any order (the
columns are then rearranged into the manifest's order once, at load).

The pipeline is fed a float64 numpy array, never a DataFrame: it was fitted on an array, a
DataFrame would make scikit-learn warn about feature names on every call, and building one
roughly doubles the cost of a single-row prediction. pandas is not even installed in this
service's environment — when it is, scikit-learn imports it (and scipy.stats) and the process
no longer fits in its 128 MiB.

Two settings of the hot path, both measured (services/CONTRACT.md, "Measurement and
as-published settings"):

- pandas being absent is answered at once. scikit-learn asks for it on every call
  (`from pandas import NA` inside `is_pandas_na`, seven times per `predict_proba` of the
  iris pipeline), and Python does not remember a failed import: each attempt searches every
  `sys.path` entry again, about a third of the pickle service's CPU per request.
  `_AbsentModules` is a meta-path finder that answers "no module named pandas" before that
  search, installed only when pandas really is not installed.
- `assume_finite=True` (scikit-learn's config, for the serving thread): the contract has
  already rejected every non-finite input (RFC 8259 JSON has no NaN/Infinity, and numbers
  beyond the float32 range are a 422), so the only non-finite values the model sees are
  the NaNs that mean "missing", which the imputer handles with its own mask. scikit-learn's
  re-scan of each step's input for NaN/inf is then redundant.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import pickle
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from iris_serving.artifact import VerifiedArtifact
from iris_serving.settings import ConfigError

OPTIONAL_MODULES_PROBED_PER_CALL = ("pandas",)


class _AbsentModules(importlib.abc.MetaPathFinder):
    """Fails the import of modules known not to be installed without searching sys.path."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _remember_absent_modules() -> None:
    absent = [
        name
        for name in OPTIONAL_MODULES_PROBED_PER_CALL
        if name not in sys.modules and importlib.util.find_spec(name) is None
    ]
    if absent and not any(isinstance(f, _AbsentModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _AbsentModules(absent))


def _label_columns(classes: Sequence[Any], labels: Sequence[str]) -> list[int] | None:
    """Column of predict_proba for each manifest label, or None when already in order.

    Raises ConfigError when the classifier's classes are not the manifest's.
    """
    values = [c.item() if isinstance(c, np.generic) else c for c in classes]
    if all(isinstance(c, int) and not isinstance(c, bool) for c in values):
        if values == list(range(len(labels))):
            return None
    elif all(isinstance(c, str) for c in values) and sorted(values) == sorted(labels):
        columns = [values.index(label) for label in labels]
        return None if columns == list(range(len(labels))) else columns
    raise ConfigError(
        f"the classifier's classes_ are {values}; expected class ids 0..{len(labels) - 1} or "
        f"the manifest's labels {list(labels)}"
    )


class SklearnPredictor:
    """`predict_proba` of the unpickled classifier, columns in the manifest's label order."""

    def __init__(
        self, classifier: object, labels: Sequence[str], feature_names: Sequence[str]
    ) -> None:
        if not callable(getattr(classifier, "predict_proba", None)):
            raise ConfigError(
                f"the pickle holds a {type(classifier).__name__} without predict_proba; "
                "expected a fitted classifier (e.g. a Pipeline ending in one)"
            )
        classes = getattr(classifier, "classes_", None)
        if classes is None:
            raise ConfigError(
                f"the pickle holds a {type(classifier).__name__} without classes_; expected a "
                "fitted classifier"
            )
        names = getattr(classifier, "feature_names_in_", None)
        if names is not None and tuple(names) != tuple(feature_names):
            # Fitted on a DataFrame with other columns (or another order): the array the
            # service passes would feed the wrong features, silently.
            raise ConfigError(
                f"the classifier was fitted on columns {list(names)}; expected the manifest's "
                f"feature_names {list(feature_names)} in that order"
            )
        self._predict_proba = classifier.predict_proba
        self._columns = _label_columns(list(classes), labels)
        self.runtime = f"scikit-learn {version('scikit-learn')} ({_describe(classifier)})"

    def predict(self, rows: np.ndarray) -> np.ndarray:
        probabilities = self._predict_proba(rows)
        return probabilities if self._columns is None else probabilities[:, self._columns]


def _describe(classifier: object) -> str:
    """The final estimator's class name (a Pipeline's last step), for /healthz."""
    steps = getattr(classifier, "steps", None)
    final = steps[-1][1] if steps else classifier
    return type(final).__name__


def load_predictor(artifact: VerifiedArtifact, env: Mapping[str, str]) -> SklearnPredictor:
    """Unpickle the bytes whose sha256 matched the manifest (the artifact holds them: the file
    is never opened again, so what is unpickled is what was checked)."""
    _remember_absent_modules()
    try:
        classifier = pickle.loads(artifact.data)  # safe only because these bytes were checked
    except Exception as error:  # a matching hash with an unloadable pickle: wrong environment
        raise ConfigError(
            f"{artifact.path} matches the manifest but cannot be unpickled here "
            f"({type(error).__name__}: {error}); expected scikit-learn "
            f"{artifact.manifest.get('versions', {}).get('scikit-learn', '?')}"
        ) from None
    import sklearn

    # The event loop runs on this (the main) thread; scikit-learn's config is per thread.
    sklearn.set_config(assume_finite=True)
    return SklearnPredictor(classifier, artifact.class_labels, artifact.feature_names)

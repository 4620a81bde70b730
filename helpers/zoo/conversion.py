"""A zoo model's conversion (notebook 09): each input type tried, plain skl2onnx first and
then with `helpers.zoo.repairs`, each graph checked for parity against the pickle fed
float64 (what the pickle service computes), and the one served chosen.

A model that does not convert is an Attempt with skl2onnx's reason, never an exception: the
zoo's table has a row for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pandas as pd
from sklearn.pipeline import Pipeline

from helpers.model import convert, parity
from helpers.zoo import repairs

THRESHOLD_BASE_STEP = 6  # every 6th test row is a base row for the split-threshold rows
REASON_CHARS = 300
# skl2onnx 1.20's SVC converter reads `probA_`/`probB_` of every SVC, attributes scikit-learn
# 1.9 deprecated along with SVC(probability=True). The zoo's SVC does not use that path (it is
# Platt-scaled by CalibratedClassifierCV): the attributes are empty and the graph ignores them.
SKL2ONNX_READS_SVC_PROBABILITY = r"Attribute `prob[AB]_` was deprecated"


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
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=SKL2ONNX_READS_SVC_PROBABILITY, category=FutureWarning
        )
        return _convert_attempt(model, input_type)


def _convert_attempt(model: Pipeline, input_type: str) -> Attempt:
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


def manifest_section(served: Attempt | None, attempts: Sequence[Attempt]) -> dict[str, Any]:
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

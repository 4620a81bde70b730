"""Notebook 09's record: run_dir/zoo/zoo.json and summary.json's `zoo` section, in one dict.

Built here from what the notebook measured rather than typed out in its last cell, so the
record's keys are one function's and every finding in it is computed from the same objects
the notebook showed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from helpers.zoo import costs, report, safety
from helpers.zoo.classifiers import ZooModel


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records, its index a column (NaN as null, numpy types as plain ones)."""
    return json.loads(frame.reset_index().to_json(orient="records"))


def build(
    *,
    profile: str,
    built: Sequence[ZooModel],
    measured: list[dict[str, Any]],
    cost_table: pd.DataFrame,
    bench_iterations: int,
    unpickled: dict[str, Any],
    refusal: safety.Refusal,
    skops_on_pickle: dict[str, Any],
    skops_untrusted: dict[str, Any],
    onnx_escape: dict[str, str],
    formats: pd.DataFrame,
    serving: dict[str, Any],
    heaviest: dict[str, Any],
    serving_findings: Sequence[str],
) -> dict[str, Any]:
    """The zoo's record: conversion, parity, costs, the safety demonstrations, every finding,
    what serving each model cost against logistic regression (helpers.zoo.serving_report.
    serving_section), and the heaviest model's capacity and cold start (heaviest_section)."""
    return {
        "profile": profile,
        "models": [model.spec.name for model in built],
        "conversion": _records(report.conversion_table(built)),
        "parity": _records(report.parity_summary(built)),
        "costs": measured,
        "cost_table": _records(cost_table),
        "bench_iterations": bench_iterations,
        "safety": {
            "unpickled_without_check": unpickled,
            "service_refusal": {
                "exit_status": refusal.exit_status,
                "marker_written": refusal.marker_written,
                "stderr_last_line": refusal.stderr.splitlines()[-1] if refusal.stderr else "",
            },
            "skops_on_pickle": skops_on_pickle,
            "skops_untrusted": skops_untrusted,
            "onnx_external_data": onnx_escape,
            "formats": _records(formats),
        },
        "findings": [
            report.conversion_finding(built),
            report.float32_finding(built),
            *costs.cost_findings(cost_table),
            *safety.safety_findings(unpickled, refusal, skops_untrusted, onnx_escape),
            *serving_findings,
        ],
        "serving": serving,
        "heaviest": heaviest,
    }

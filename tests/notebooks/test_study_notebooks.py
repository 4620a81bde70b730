"""`make study PROFILE=smoke` through helpers.study: 01 → 05 run headless and leave a summary.

Asserts on values the notebooks recorded (summary.json), not on their outputs' text.
"""

from __future__ import annotations

import json

import pytest

from helpers import study
from helpers.analysis.summary import SERVICE_FIELDS
from helpers.net import free_port
from helpers.serving.services import SERVICE_NAMES
from helpers.serving.stack import port_variable

pytestmark = pytest.mark.notebooks


def test_the_study_runs_end_to_end_and_writes_summary_json(tmp_path, monkeypatch):
    # Free ports through the variables both backends honour: a developer's own stack may hold
    # the seed's 5001-5003/9090 (the notebooks, like a user, start the stack on the defaults).
    for key in (*SERVICE_NAMES, "prometheus"):
        monkeypatch.setenv(port_variable(key), str(free_port()))
    status = study.main(
        [
            "--profile",
            "smoke",
            "--run-id",
            "smoke-test",
            "--results-dir",
            str(tmp_path),
            "--artifacts-dir",
            str(tmp_path / "artifacts"),
        ]
    )
    run_dir = tmp_path / "smoke-test"
    assert status == 0, (run_dir / "study.json").read_text() if run_dir.exists() else status
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_id"] == "smoke-test"
    assert summary["profile"] == "smoke"
    assert summary["backend"] == "local"
    assert isinstance(summary["limits_enforced"], bool)
    assert summary["model"]["test_accuracy"] is not None
    assert summary["parity"] is not None and summary["parity"]["passed"] is True
    for name in SERVICE_NAMES:
        for mode, values in summary["services"][name].items():
            assert mode in ("coupled", "isolated")
            assert set(SERVICE_FIELDS) <= set(values)
            assert values["requests"] > 0
            assert values["error_rate"] == 0
            assert values["peak_memory_working_set_bytes"] > 0
    assert all(len(v) == 4 for v in summary["claims"].values())
    assert (run_dir / "plots").is_dir() and any((run_dir / "plots").glob("*.png"))

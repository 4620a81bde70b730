"""`make study PROFILE=smoke` through helpers.study (the folder's one run, conftest.py): every
notebook runs headless and leaves a summary; and a finished run re-analysed later, after its
inputs changed, gives the same numbers.

Asserts on values the notebooks recorded (summary.json), not on their outputs' text.
"""

from __future__ import annotations

import json

import pytest

from helpers import study
from helpers.analysis.summary import SERVICE_FIELDS
from helpers.model import artifacts, train
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks


def test_the_study_runs_end_to_end_and_writes_summary_json(smoke_study):
    run_dir = smoke_study["run"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_id"] == "smoke-test"
    assert summary["profile"] == "smoke"
    assert summary["backend"] == "local"
    assert isinstance(summary["limits_enforced"], bool)
    assert summary["model"]["test_accuracy"] is not None
    assert summary["parity"] is not None and summary["parity"]["passed"] is True
    assert summary["service_exits"] == [] and summary["interrupted"] is False
    for name in SERVICE_NAMES:
        for mode, values in summary["services"][name].items():
            assert mode in ("coupled", "isolated")
            assert set(SERVICE_FIELDS) <= set(values)
            assert values["requests"] > 0
            assert values["error_rate"] == 0
            assert values["peak_memory_working_set_bytes"] > 0
    assert all(len(v) == 4 for v in summary["claims"].values())
    assert (run_dir / "plots").is_dir() and any((run_dir / "plots").glob("*.png"))


def test_a_run_reanalysed_after_its_inputs_changed_gives_the_same_numbers(copy_of_smoke_study):
    """Notebook 05 reads only the run folder: after the load profile is edited and the model
    retrained, re-running it on the old run must reproduce summary.json."""
    run = copy_of_smoke_study
    run_dir = run["run"]
    before = json.loads((run_dir / "summary.json").read_text())
    profiles_file = run["profiles"]
    edited = json.loads(profiles_file.read_text())
    edited["smoke"]["start_rate"] *= 7
    edited["smoke"]["stages"][-1]["target"] *= 3
    profiles_file.write_text(json.dumps(edited))
    artifacts_dir = run["artifacts"]
    retrained = train.train(seed=7)  # another split: another model, other hashes
    train.save(retrained, artifacts_dir)
    artifacts.ensure(artifacts_dir)
    (run_dir / "summary.json").unlink()  # so 05 must compute it all again
    assert study.main([*run["args"], "--notebooks", "05"]) == 2  # an existing run: refused
    assert study.main([*run["args"], "--notebooks", "05", "--resume"]) == 0
    after = json.loads((run_dir / "summary.json").read_text())
    assert {"services", "claims", "model", "phases"} <= set(after)
    assert after == {key: before[key] for key in after}

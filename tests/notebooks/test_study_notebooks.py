"""`make study PROFILE=smoke` through helpers.study: 01 → 05 run headless and leave a summary;
and a finished run re-analysed later, after its inputs changed, gives the same numbers.

Asserts on values the notebooks recorded (summary.json), not on their outputs' text.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import study
from helpers.analysis.summary import SERVICE_FIELDS
from helpers.load.profiles import PROFILES_FILE
from helpers.model import artifacts, train
from helpers.net import free_port
from helpers.serving import ports
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One `make study PROFILE=smoke` (all notebooks), with its own profiles file and artifacts."""
    root = tmp_path_factory.mktemp("smoke-study")
    profiles_file = root / "profiles.json"
    shutil.copy(PROFILES_FILE, profiles_file)
    mp = pytest.MonkeyPatch()
    # Free ports through the variables both backends honour: a developer's own stack may hold
    # the seed's 5001-5003/9090 (the notebooks, like a user, start the stack on the defaults).
    for key in (*SERVICE_NAMES, "prometheus"):
        mp.setenv(ports.variable(key), str(free_port()))
    args = ["--profile", "smoke", "--run-id", "smoke-test", "--results-dir", str(root)]
    args += ["--artifacts-dir", str(root / "artifacts"), "--profiles-file", str(profiles_file)]
    try:
        status = study.main(args)
    finally:
        mp.undo()
    run_dir = root / "smoke-test"
    assert status == 0, (run_dir / "study.json").read_text() if run_dir.exists() else status
    return {"root": root, "run": run_dir, "profiles": profiles_file, "args": args}


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


def test_a_run_reanalysed_after_its_inputs_changed_gives_the_same_numbers(smoke_study):
    """Notebook 05 reads only the run folder: after the load profile is edited and the model
    retrained, re-running it on the old run must reproduce summary.json."""
    run_dir = smoke_study["run"]
    before = json.loads((run_dir / "summary.json").read_text())
    profiles_file = smoke_study["profiles"]
    edited = json.loads(profiles_file.read_text())
    edited["smoke"]["start_rate"] *= 7
    edited["smoke"]["stages"][-1]["target"] *= 3
    profiles_file.write_text(json.dumps(edited))
    artifacts_dir = smoke_study["root"] / "artifacts"
    retrained = train.train(seed=7)  # another split: another model, other hashes
    train.save(retrained, artifacts_dir)
    artifacts.ensure(artifacts_dir)
    (run_dir / "summary.json").unlink()  # so 05 must compute it all again
    assert study.main([*smoke_study["args"], "--notebooks", "05"]) == 0
    after = json.loads((run_dir / "summary.json").read_text())
    assert {"services", "claims", "model", "phases"} <= set(after)
    assert after == {key: before[key] for key in after}

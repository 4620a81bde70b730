"""One `make study PROFILE=smoke` — every notebook, in order, headless — for the whole folder.

Each notebook's tests assert on what this one run wrote (summary.json, the run folder, the
artifacts), exactly as a user's run writes them: running 01 → 08 once instead of once per
notebook's tests keeps `make test` inside its budget. A test that changes what a run wrote
works on a copy (`copy_of_smoke_study`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from helpers import study
from helpers.load.profiles import PROFILES_FILE
from helpers.net import free_lasting_port
from helpers.serving import ports
from helpers.serving.services import SERVICE_NAMES

RUN_ID = "smoke-test"


def study_args(root: Path) -> list[str]:
    """The study's arguments for a run kept under `root` (results, artifacts, profiles)."""
    return [
        "--profile", "smoke",
        "--backend", "local",
        "--run-id", RUN_ID,
        "--results-dir", str(root / "results"),
        "--artifacts-dir", str(root / "artifacts"),
        "--profiles-file", str(root / "profiles.json"),
    ]  # fmt: skip


def layout(root: Path) -> dict[str, Any]:
    return {
        "root": root,
        "args": study_args(root),
        "run": root / "results" / RUN_ID,
        "artifacts": root / "artifacts",
        "profiles": root / "profiles.json",
    }


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run, with its own profiles file and artifacts; read-only by convention."""
    root = tmp_path_factory.mktemp("smoke-study")
    shutil.copy(PROFILES_FILE, root / "profiles.json")
    mp = pytest.MonkeyPatch()
    # Free ports through the variables both backends honour: a developer's own stack may hold
    # the seed's 5001-5003/9090 (the notebooks, like a user, start the stack on the defaults).
    for key in (*SERVICE_NAMES, "prometheus"):
        mp.setenv(ports.variable(key), str(free_lasting_port()))
    try:
        status = study.main(study_args(root))
    finally:
        mp.undo()
    found = layout(root)
    study_record = found["run"] / "study.json"
    assert status == 0, study_record.read_text() if study_record.exists() else status
    return found


@pytest.fixture
def copy_of_smoke_study(smoke_study: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """A private copy of the whole run (results, artifacts, profiles) a test may change."""
    root = Path(shutil.copytree(smoke_study["root"], tmp_path / "copy", symlinks=True))
    return layout(root)

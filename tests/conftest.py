"""Fixtures shared across test folders. Keep each one small and named for what it provides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.model import artifacts


@pytest.fixture(scope="session")
def model_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly trained and converted model (pickle, both ONNX files, manifest), made once.

    Read-only by convention: a test that changes files takes `model_artifacts_copy`.
    """
    artifacts_dir = tmp_path_factory.mktemp("artifacts")
    artifacts.ensure(artifacts_dir)
    return artifacts_dir


@pytest.fixture
def model_artifacts_copy(model_artifacts: Path, tmp_path: Path) -> Path:
    """A private copy of `model_artifacts` that a test may tamper with."""
    return Path(shutil.copytree(model_artifacts, tmp_path / "artifacts"))

"""helpers.model.artifacts: the shortcut that makes a model from a clone, and only when needed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.model import artifacts


def test_complete_artifacts_are_left_alone(model_artifacts_copy: Path) -> None:
    before = (model_artifacts_copy / "manifest.json").stat().st_mtime_ns
    assert artifacts.ensure(model_artifacts_copy) is False
    assert (model_artifacts_copy / "manifest.json").stat().st_mtime_ns == before


def test_a_manifest_without_the_onnx_files_is_rebuilt(model_artifacts_copy: Path) -> None:
    """What running notebook 01 alone leaves behind: a new pickle, no conversion yet."""
    manifest_path = model_artifacts_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["artifacts"]["model.onnx"]
    manifest_path.write_text(json.dumps(manifest))
    assert not artifacts.complete(model_artifacts_copy)
    assert artifacts.ensure(model_artifacts_copy) is True
    assert artifacts.complete(model_artifacts_copy)


def test_a_tampered_file_is_rebuilt(model_artifacts_copy: Path) -> None:
    onnx_path = model_artifacts_copy / "model_zipmap.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    assert not artifacts.complete(model_artifacts_copy)
    assert artifacts.ensure(model_artifacts_copy) is True
    assert artifacts.complete(model_artifacts_copy)

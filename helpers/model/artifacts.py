"""Make sure the model artifacts exist: train and convert when any is missing.

Notebooks 01–02 are the documented way to produce them; this is the shortcut for tools that
need a model from a fresh clone (`make bench`, and `make test` before `go test`, whose tests
read `artifacts/`): `python -m helpers.model.artifacts [DIR]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import paths
from helpers.model import convert, train
from helpers.model import manifest as manifest_io

REQUIRED = (manifest_io.MANIFEST_NAME, "model.pkl", "model.onnx", "model_zipmap.onnx")


def complete(artifacts_dir: Path) -> bool:
    """Every artifact present and matching the manifest (running notebook 01 alone, say,
    leaves a manifest without the ONNX files: a new model invalidates the old conversion)."""
    manifest_path = artifacts_dir / manifest_io.MANIFEST_NAME
    try:
        for name in REQUIRED[1:]:
            manifest_io.verify(manifest_path, artifacts_dir / name)
    except (FileNotFoundError, manifest_io.ArtifactMismatch):
        return False
    return True


def ensure(artifacts_dir: Path = paths.ARTIFACTS_DIR) -> bool:
    """Train and convert unless every artifact is present and verified; True if it had to."""
    if complete(artifacts_dir):
        return False
    print(f"artifacts missing or stale in {artifacts_dir}: training and converting the model")
    result = train.train()
    train.save(result, artifacts_dir)
    convert.convert(result.model, artifacts_dir)
    return True


if __name__ == "__main__":
    ensure(Path(sys.argv[1]) if len(sys.argv) > 1 else paths.ARTIFACTS_DIR)

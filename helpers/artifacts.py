"""Make sure the model artifacts exist: train and convert when any is missing.

Notebooks 01–02 are the documented way to produce them; this is the shortcut for tools that
need a model from a fresh clone (`make bench`, and `make test` before `go test`, whose tests
read `artifacts/`): `python -m helpers.artifacts [DIR]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import convert, paths, train
from helpers import manifest as manifest_io

REQUIRED = (manifest_io.MANIFEST_NAME, "model.pkl", "model.onnx", "model_zipmap.onnx")


def ensure(artifacts_dir: Path = paths.ARTIFACTS_DIR) -> bool:
    """Train and convert unless every artifact is present; True if it had to."""
    if all((artifacts_dir / name).exists() for name in REQUIRED):
        return False
    print(f"artifacts missing in {artifacts_dir}: training and converting the model first")
    result = train.train()
    train.save(result, artifacts_dir)
    convert.convert(result.model, artifacts_dir)
    return True


if __name__ == "__main__":
    ensure(Path(sys.argv[1]) if len(sys.argv) > 1 else paths.ARTIFACTS_DIR)

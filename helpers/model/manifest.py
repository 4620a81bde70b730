"""The manifest: one JSON file that says what each artifact is and proves it is unchanged.

Services check a model file's sha256 against it *before* loading (for a pickle, the line
between a model and arbitrary code), and the load generator draws features within the
training ranges it records. Schema (keys are stable; later stages only add keys):

    {
      "feature_names": ["sepal_length", ...],          # the request fields, in column order
      "class_labels": ["iris-setosa", ...],             # index = class_id
      "feature_ranges": {"sepal_length": {"min": ..., "max": ...}, ...},
      "artifacts": {"model.pkl": {"sha256": ..., "bytes": ...}, "model.onnx": {...}, ...},
      "versions": {"python": ..., "scikit-learn": ..., ...},
      "training": {"seed": ..., "test_size": ..., "best_params": {...}, "cv_auc": ...,
                   "test_accuracy": ..., "n_train": ..., "n_test": ...},
      "onnx": {"input_name": "float_input", "target_opset": ..., ...}
    }
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"


class ArtifactMismatch(RuntimeError):
    """An artifact is missing or its bytes differ from what the manifest recorded."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_artifact(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path} (run notebook 01 or `make study`)")
    return json.loads(path.read_text())


def save(manifest: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a manifest


def record_artifacts(manifest_path: Path, *artifact_paths: Path, **sections: Any) -> dict:
    """Add (or refresh) artifacts and top-level sections in the manifest beside them."""
    manifest = load(manifest_path) if manifest_path.exists() else {}
    artifacts = manifest.setdefault("artifacts", {})
    for artifact in artifact_paths:
        artifacts[artifact.name] = describe_artifact(artifact)
    manifest.update(sections)
    save(manifest, manifest_path)
    return manifest


def read_verified(manifest_path: Path, artifact_path: Path) -> bytes:
    """The artifact's bytes, read once and hashed as read: what the caller loads is exactly
    what matched the manifest (hashing the path, then opening it again, would load a file
    swapped in between). ArtifactMismatch if it is missing, unlisted or changed."""
    if not artifact_path.exists():
        raise ArtifactMismatch(f"artifact missing: {artifact_path}")
    entry = load(manifest_path).get("artifacts", {}).get(artifact_path.name)
    if entry is None:
        raise ArtifactMismatch(f"{artifact_path.name} is not listed in {manifest_path}")
    data = artifact_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry["sha256"]:
        raise ArtifactMismatch(
            f"{artifact_path} has sha256 {actual}, manifest {manifest_path} expects "
            f"{entry['sha256']}: the file was changed after training"
        )
    return data


def verify(manifest_path: Path, artifact_path: Path) -> str:
    """Return the artifact's sha256 if it matches the manifest; raise ArtifactMismatch if not."""
    return hashlib.sha256(read_verified(manifest_path, artifact_path)).hexdigest()

"""The manifest check that runs before a model file is opened by anything that could execute it.

For the pickle this is the line between loading a model and running arbitrary code: the
bytes are hashed and compared with `manifest["artifacts"][basename]["sha256"]` first, and only
a match is handed to the loader — the very bytes that were hashed (`VerifiedArtifact.data`),
never the path to open again: a file swapped between the check and a second open would
otherwise be loaded (and, for a pickle, executed) unchecked. The file is opened once. The
manifest also supplies the labels and the feature order, so no service hard-codes them.
Schema: helpers/model/manifest.py (read here, never imported).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from iris_serving.contract import FEATURE_NAMES
from iris_serving.settings import ConfigError


@dataclass(frozen=True)
class VerifiedArtifact:
    """A model file's bytes that match the manifest, plus what the manifest says about them.

    `data` is what loaders load; the server drops it (`without_data`) once the model is built.
    """

    path: Path
    sha256: str
    feature_names: tuple[str, ...]
    class_labels: tuple[str, ...]
    manifest: dict[str, Any]
    data: bytes = field(default=b"", repr=False)

    def without_data(self) -> VerifiedArtifact:
        return replace(self, data=b"")


def _read_model(model_path: Path) -> bytes:
    """The model file's bytes, read once (a FIFO or a regular file alike)."""
    try:
        return model_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {model_path} (MODEL_PATH)") from None
    except OSError as error:  # a directory, no permission…
        raise ConfigError(f"model file {model_path} (MODEL_PATH) is unreadable: {error}") from None


def _read_manifest(manifest_path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"manifest not found: {manifest_path} (MODEL_MANIFEST); expected the "
            "manifest.json written by training"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"manifest {manifest_path} is unreadable: {error}") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"manifest {manifest_path} is not a JSON object")
    return manifest


def verify(model_path: Path, manifest_path: Path) -> VerifiedArtifact:
    """Hash the model file and compare with the manifest; ConfigError on any discrepancy."""
    manifest = _read_manifest(manifest_path)
    entry = manifest.get("artifacts", {}).get(model_path.name)
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ConfigError(
            f"{model_path.name} is not listed under 'artifacts' in {manifest_path}; "
            "expected an entry with its sha256"
        )
    data = _read_model(model_path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry["sha256"]:
        raise ConfigError(
            f"{model_path} has sha256 {actual} but {manifest_path} expects {entry['sha256']}: "
            "refusing to load a model file that changed after training"
        )
    feature_names = tuple(manifest.get("feature_names", ()))
    if feature_names != FEATURE_NAMES:
        # The request fields are the contract; the manifest fixes their column order. If
        # they disagree, the model would be fed the wrong columns, silently.
        raise ConfigError(
            f"{manifest_path} lists feature_names {list(feature_names)}; the contract "
            f"expects {list(FEATURE_NAMES)} in that order"
        )
    labels = manifest.get("class_labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ConfigError(f"{manifest_path} has no class_labels list of strings")
    return VerifiedArtifact(model_path, actual, feature_names, tuple(labels), manifest, data)

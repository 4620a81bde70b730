"""helpers.model.manifest: recorded hashes match the files; any change to a file is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.model import manifest, train


@pytest.mark.parametrize("name", ["model.pkl", "model.onnx", "model_zipmap.onnx"])
def test_hashes_match_the_files(model_artifacts: Path, name: str) -> None:
    manifest_path = model_artifacts / manifest.MANIFEST_NAME
    entry = manifest.load(manifest_path)["artifacts"][name]
    assert manifest.verify(manifest_path, model_artifacts / name) == entry["sha256"]
    assert entry["bytes"] == (model_artifacts / name).stat().st_size


def test_tampered_file_is_detected(model_artifacts_copy: Path) -> None:
    pickle_path = model_artifacts_copy / "model.pkl"
    data = bytearray(pickle_path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    pickle_path.write_bytes(bytes(data))
    with pytest.raises(manifest.ArtifactMismatch, match="changed after training"):
        manifest.verify(model_artifacts_copy / manifest.MANIFEST_NAME, pickle_path)
    with pytest.raises(manifest.ArtifactMismatch):  # and it is never unpickled
        train.load_model(model_artifacts_copy)


def test_missing_and_unlisted_files_are_detected(model_artifacts_copy: Path) -> None:
    manifest_path = model_artifacts_copy / manifest.MANIFEST_NAME
    (model_artifacts_copy / "model.onnx").unlink()
    with pytest.raises(manifest.ArtifactMismatch, match="missing"):
        manifest.verify(manifest_path, model_artifacts_copy / "model.onnx")
    stranger = model_artifacts_copy / "other.onnx"
    stranger.write_bytes(b"x")
    with pytest.raises(manifest.ArtifactMismatch, match="not listed"):
        manifest.verify(manifest_path, stranger)


def test_read_verified_returns_the_very_bytes_it_hashed(model_artifacts_copy: Path) -> None:
    """What a caller loads is what matched: the bytes come from the one read that was hashed,
    and a file changed after training is refused before anyone could load it."""
    manifest_path = model_artifacts_copy / manifest.MANIFEST_NAME
    pickle_path = model_artifacts_copy / "model.pkl"
    original = pickle_path.read_bytes()
    assert manifest.read_verified(manifest_path, pickle_path) == original
    pickle_path.write_bytes(original + b"\0")
    with pytest.raises(manifest.ArtifactMismatch, match="changed after training"):
        manifest.read_verified(manifest_path, pickle_path)
    with pytest.raises(manifest.ArtifactMismatch, match="not listed"):
        manifest.read_verified(manifest_path, model_artifacts_copy / manifest.MANIFEST_NAME)

"""helpers.zoo.safety: the crafted pickle runs code when unpickled, skops refuses what it
does not trust, ONNX external data may not leave its folder; the format table is measured."""

from __future__ import annotations

from pathlib import Path

from helpers.zoo import safety


def test_the_crafted_pickle_runs_code_when_unpickled_without_a_check(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = safety.malicious_pickle(tmp_path / "model.pkl", marker)
    assert not marker.exists()
    outcome = safety.unpickle_in_child(path, marker)
    assert outcome == {"exit_status": 0, "marker_written": True}
    assert marker.read_text() == safety.MARKER_TEXT


def test_skops_refuses_an_untrusted_type_until_it_is_trusted(tmp_path: Path) -> None:
    outcome = safety.skops_refusal(tmp_path)
    assert outcome["untrusted_types"] == ["helpers.zoo.safety.MarkerOnSkopsLoad"]
    assert outcome["refused"] and "UntrustedTypesFoundException" in outcome["error"]
    assert outcome["marker_after_refusal"] is False
    assert outcome["marker_after_trusting"] is True  # trust is the reader's decision


def test_skops_does_not_unpickle_a_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = safety.malicious_pickle(tmp_path / "model.pkl", marker)
    outcome = safety.skops_on_pickle(path, marker)
    assert outcome["error"] and outcome["marker_written"] is False


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    outcome = safety.external_data_escape(tmp_path)
    assert set(outcome) == {"onnx.load", "onnxruntime (path)", "onnxruntime (bytes)"}
    for loader, text in outcome.items():
        assert text.startswith("refused"), (loader, text)


def test_format_table_measures_the_seed_model(model_artifacts: Path, tmp_path: Path) -> None:
    table = safety.format_table(model_artifacts, tmp_path, repeats=2)
    assert list(table.index) == ["pickle", "skops", "ONNX"]
    assert table.loc["pickle", "bytes"] == (model_artifacts / "model.pkl").stat().st_size
    assert table.loc["ONNX", "bytes"] == (model_artifacts / "model.onnx").stat().st_size
    assert table.loc["skops", "bytes"] == (tmp_path / "model.skops").stat().st_size
    assert (table["warm_load_ms"] > 0).all()


def test_findings_follow_the_outcomes() -> None:
    refused = safety.Refusal(2, "model.pkl has sha256 … refusing", False)
    served = safety.Refusal(None, "still running", True)
    skops = {
        "untrusted_types": ["x.Y"],
        "refused": True,
        "marker_after_refusal": False,
        "marker_after_trusting": True,
    }
    escape = {"onnx.load": "refused: …", "onnxruntime (bytes)": "loaded: …"}
    good = safety.safety_findings({"marker_written": True}, refused, skops, escape)
    bad = safety.safety_findings({"marker_written": False}, served, skops, escape)
    assert "refused it before unpickling" in good[1] and "did NOT refuse" in bad[1]
    assert "a pickle is code" in good[0] and "demonstration failed" in bad[0]
    assert "1 of 2 loaders" in good[3]
    assert not safety.Refusal(2, "PORT=abc is not a port", False).refused_before_unpickling

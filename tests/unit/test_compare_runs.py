"""Two runs' headline ratios compared, on summaries given here."""

from __future__ import annotations

import json

from helpers.bench import compare_runs
from helpers.intervals import Estimate


def summary(pkl: int, onnx: int, go: int, floor_multiple: float) -> dict:
    capacity = {"python-api-pkl": pkl, "python-api-onnx": onnx, "go-api-onnx": go}
    return {
        "capacity": {s: {"rate_rps": r} for s, r in capacity.items()},
        "floors": {
            s: {
                "multiple_of_floor": Estimate(floor_multiple, 0, 9, 5).record(),
                "multiple_of_go": Estimate(go / r, 0, 99, 5).record(),
            }
            for s, r in capacity.items()
        },
    }


def test_ratios_that_moved_less_than_15_percent_pass_and_more_fail(tmp_path, capsys):
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, made in (
        (first, summary(600, 2500, 7500, 2.0)),
        (second, summary(620, 2450, 7700, 2.1)),
        (third, summary(400, 2500, 7500, 2.0)),  # the pickle service's capacity fell a third
    ):
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(made))
    assert compare_runs.main([str(first), str(second)]) == 0
    assert "within ±15%" in capsys.readouterr().out
    assert compare_runs.main([str(first), str(third)]) == 1
    said = capsys.readouterr().out
    assert "capacity go-api-onnx / python-api-pkl" in said and "beyond ±15 %" in said


def test_a_folder_without_a_summary_is_a_clear_error(tmp_path, capsys):
    assert compare_runs.main([str(tmp_path), str(tmp_path)]) == 2
    assert "summary.json not found" in capsys.readouterr().err

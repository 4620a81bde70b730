"""helpers.model.microbench and helpers.bench.driver: the measurement's structure, not its speed."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from helpers.bench import driver
from helpers.model import microbench

matplotlib.use("Agg")


def test_interleaved_samples_and_summary(model_artifacts: Path) -> None:
    result = microbench.measure(model_artifacts, iterations=50, warmup=5)
    counts = result.samples["runtime"].value_counts()
    assert counts.to_dict() == {microbench.SKLEARN: 50, microbench.ONNXRUNTIME: 50}
    summary = result.summary()
    assert (summary["p99_us"] >= summary["median_us"]).all()
    assert (summary["median_us"] > 0).all()
    expected = (
        summary.loc[microbench.SKLEARN, "median_us"]
        / summary.loc[microbench.ONNXRUNTIME, "median_us"]
    )
    assert result.median_ratio == pytest.approx(expected)


def test_plot_has_titles_and_units(model_artifacts: Path) -> None:
    figure = microbench.plot(microbench.measure(model_artifacts, iterations=20, warmup=0))
    for axes in figure.axes:
        assert axes.get_title()
        assert "µs" in axes.get_ylabel()


def test_bad_iteration_counts_are_refused(model_artifacts: Path) -> None:
    with pytest.raises(ValueError, match="iterations"):
        microbench.measure(model_artifacts, iterations=0)


def test_bench_runs_only_the_chosen_section(
    model_artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--only", "model", "--artifacts-dir", str(model_artifacts), "--iterations", "30"]
    assert driver.main(argv) == 0
    printed = capsys.readouterr().out
    assert "== model:" in printed and "ratio of medians" in printed
    assert printed.count("median") >= 3


def test_bench_rejects_an_unknown_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        driver.main(["--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err

"""helpers.study: argument validation, parameter passing, and stopping at the first failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.study import driver as study


def tiny_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with one `parameters` cell followed by `cells`."""
    notebook = new_notebook()
    notebook.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    notebook.cells += [new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        study.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "turbo"], "invalid choice: 'turbo'"),
        (["--profile", "smoke", "--backend", "k8s"], "invalid choice: 'k8s'"),
        (["--backend", "local"], "--profile"),
        (["--profile", "smoke", "--notebooks", "01,99"], "unknown ['99']"),
        (["--profile", "smoke", "--run-id", "../escape"], "--run-id '../escape'"),
        (["--profile", "smoke", "--cell-timeout", "0"], "must be positive"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(argv, capsys)
    assert code == 2
    assert message in err


def test_missing_notebook_file_is_an_argument_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["--profile", "smoke", "--notebooks-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "notebooks not found" in err and study.NOTEBOOKS[0] in err


def test_the_command_line_itself_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "helpers.study", "--profile", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "choose from" in done.stderr


def test_notebooks_are_selected_in_study_order() -> None:
    names = ["01_a", "02_b", "03_c"]
    assert study.select(names, "03,01") == ["01_a", "03_c"]
    assert study.select(names, "02_b") == ["02_b"]
    assert study.select(names, None) == names
    with pytest.raises(ValueError, match="choose from"):
        study.select(names, "0")


def test_only_declared_parameters_are_passed_and_outputs_written(tmp_path: Path) -> None:
    first = tiny_notebook(
        tmp_path / "01_first.ipynb",
        'run_dir = ""\nprofile = "default"',
        "from pathlib import Path\n(Path(run_dir) / 'first.txt').write_text(profile)",
    )
    second = tiny_notebook(
        tmp_path / "02_second.ipynb",
        'run_dir = ""',
        "from pathlib import Path\n"
        "text = (Path(run_dir) / 'first.txt').read_text()\n"
        "(Path(run_dir) / 'second.txt').write_text(text + '!')",
    )
    assert study.declared_parameters(first) == {"run_dir", "profile"}
    run_dir = tmp_path / "run"
    parameters = {"run_dir": str(run_dir), "profile": "smoke", "undeclared": 1}
    assert study.run_notebooks([first, second], run_dir, parameters, 60, 300) == 0
    assert (run_dir / "second.txt").read_text() == "smoke!"
    for name in ("01_first", "02_second"):
        assert (run_dir / f"{name}.ipynb").exists() and (run_dir / f"{name}.html").exists()
    executed = nbformat.read(run_dir / "02_second.ipynb", as_version=4)
    injected = next(
        c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    assert "undeclared" not in injected.source and "profile" not in injected.source
    assert json.loads((run_dir / "study.json").read_text())["notebooks"]["02_second"]["ok"]


def test_a_failing_notebook_stops_the_study(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    failing = tiny_notebook(
        tmp_path / "01_fails.ipynb",
        'run_dir = ""',
        "x = 1",
        "raise ValueError('deliberate failure 4711')",
        "open(run_dir + '/after.txt', 'w').close()",
    )
    never = tiny_notebook(tmp_path / "02_never.ipynb", 'run_dir = ""', "x = 2")
    run_dir = tmp_path / "run"
    status = study.run_notebooks([failing, never], run_dir, {"run_dir": str(run_dir)}, 60, 300)
    assert status == 1
    err = capfd.readouterr().err
    assert "STUDY FAILED: 01_fails.ipynb failed in cell" in err
    assert "ValueError: deliberate failure 4711" in err
    assert "raise ValueError('deliberate failure 4711')" in err  # the failing cell's source
    assert not (run_dir / "after.txt").exists()
    assert not (run_dir / "02_never.ipynb").exists()
    assert (run_dir / "01_fails.html").exists()  # the failure is readable in the browser too


def test_the_outer_timeout_stops_a_hung_notebook(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    hung = tiny_notebook(tmp_path / "01_hung.ipynb", 'run_dir = ""', "import time\ntime.sleep(600)")
    run_dir = tmp_path / "run"
    assert study.run_notebooks([hung], run_dir, {"run_dir": str(run_dir)}, 600, 8) == 1
    assert "outer timeout" in capfd.readouterr().err


def test_the_kernelspec_points_at_this_interpreter() -> None:
    name = study.ensure_kernel()
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable


def test_an_existing_run_folder_is_refused_unless_resumed_or_replaced(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    study.claim_run_dir(run_dir, resume=False, force=False)  # a new folder: fine
    run_dir.mkdir()
    study.claim_run_dir(run_dir, resume=False, force=False)  # an empty one: fine
    (run_dir / "summary.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"--resume .* or --force"):
        study.claim_run_dir(run_dir, resume=False, force=False)
    study.claim_run_dir(run_dir, resume=True, force=False)
    assert (run_dir / "summary.json").exists()  # resumed: kept
    study.claim_run_dir(run_dir, resume=False, force=True)
    assert not run_dir.exists()  # replaced: gone, to be made anew

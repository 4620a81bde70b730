"""helpers.study.hygiene: dirty or ambiguous notebooks are named and fail the lint."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from helpers.paths import NOTEBOOKS_DIR
from helpers.study import hygiene as notebook_hygiene


def write(path: Path, parameter_cells: int = 1, executed: bool = False) -> Path:
    notebook = new_notebook()
    for _ in range(parameter_cells):
        notebook.cells.append(new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    cell = new_code_cell("print(x)")
    if executed:
        cell.execution_count = 3
        cell.outputs = [new_output("stream", name="stdout", text="1\n")]
    notebook.cells.append(cell)
    nbformat.write(notebook, path)
    return path


def test_clean_folder_passes(tmp_path: Path) -> None:
    write(tmp_path / "01_clean.ipynb")
    assert notebook_hygiene.main([str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"executed": True}, "has outputs"),
        ({"executed": True}, "execution count 3"),
        ({"parameter_cells": 0}, "0 cells tagged 'parameters'"),
        ({"parameter_cells": 2}, "2 cells tagged 'parameters'"),
    ],
)
def test_problems_fail_and_name_the_file(
    tmp_path: Path, kwargs: dict, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "01_clean.ipynb")
    dirty = write(tmp_path / "02_dirty.ipynb", **kwargs)
    assert notebook_hygiene.main([str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert f"{dirty}: " in printed and message in printed
    assert "01_clean" not in printed


def test_unreadable_notebook_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert notebook_hygiene.main([str(tmp_path)]) == 1
    assert notebook_hygiene.main([str(tmp_path / "missing")]) == 2
    assert notebook_hygiene.main([]) == 2


def test_the_committed_notebooks_are_clean() -> None:
    assert notebook_hygiene.main([str(NOTEBOOKS_DIR)]) == 0

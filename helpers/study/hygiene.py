"""Check committed notebooks are clean: `python -m helpers.study.hygiene notebooks`.

Committed notebooks are templates the study runs, not results: outputs and execution
counts would make every run a diff and could leak a stale result into a reader's view, and
papermill needs exactly one `parameters` cell to know where to inject the run's values.
Exit status: 0 clean, 1 problems (each printed with its file), 2 bad arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat


def problems(path: Path) -> list[str]:
    """What is wrong with one notebook, as readable sentences; empty if it is clean."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # any unreadable file is a problem to report, not a crash
        return [f"not a readable notebook ({type(error).__name__}: {error})"]
    found = []
    parameter_cells = 0
    for index, cell in enumerate(notebook.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            parameter_cells += 1
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index} has execution count {cell.execution_count}")
    if parameter_cells != 1:
        found.append(f"has {parameter_cells} cells tagged 'parameters', expected exactly one")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    folders = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not folders or any(not folder.is_dir() for folder in folders):
        print("usage: python -m helpers.study.hygiene FOLDER [FOLDER …]", file=sys.stderr)
        return 2
    notebooks = sorted(
        path
        for folder in folders
        for path in folder.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in path.parts
    )
    failed = 0
    for path in notebooks:
        for problem in problems(path):
            print(f"{path}: {problem}")
            failed = 1
    if failed:
        print("clean with: nbstripout <notebook> (pre-commit does it on commit)", file=sys.stderr)
    return failed


if __name__ == "__main__":
    sys.exit(main())

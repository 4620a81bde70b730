"""The house's structure, drawn from its imports: rooms import only downwards, no module imports
in a circle (import-linter's contracts in pyproject.toml), and every helpers module is short."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import paths

MAX_MODULE_LINES = 350
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_imports_only_go_down_and_never_in_a_circle():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_every_helpers_module_is_at_most_350_lines():
    modules = sorted((paths.REPO_ROOT / "helpers").rglob("*.py"))
    assert len(modules) > 50, "the helpers package was not found"
    lengths = {m.relative_to(paths.REPO_ROOT): len(m.read_text().splitlines()) for m in modules}
    too_long = {str(m): n for m, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"split these by job (at most {MAX_MODULE_LINES} lines): {too_long}"

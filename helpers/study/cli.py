"""`make study`'s command line: its arguments, checked before anything runs, and the run
folder it claims (an existing one is refused unless --resume or --force says otherwise)."""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths
from helpers.load.profiles import MODE_CHOICES, PROFILES_FILE, get_profile

NOTEBOOKS: list[str] = [
    "01_train_model",
    "02_convert_to_onnx",
    "03_serve",
    "04_load_test",
    "05_analyze",
    "06_capacity",
    "07_sizing_and_cost",
    "08_why",
    "09_beyond_logreg",
    "00_summary",  # last: the answer, from what 05–09 wrote
]
PROFILES = ("seed", "quick", "smoke")
BACKENDS = ("local", "docker")
# Outer budget per profile, twice what a run takes on a 2-core machine (seed: ~1 h, 33 min of
# it the load test in both modes; quick: ~20 min): measuring stops adaptively within budgets
# (helpers.sizing), so a run far over them is stuck, not slow.
STUDY_TIMEOUT_S = {"seed": 2 * 3600, "quick": 3600, "smoke": 1800}
# Per cell: notebook 04 runs the whole load test in one cell (seed, both modes: ~34 min).
CELL_TIMEOUT_S = {"seed": 3600, "quick": 1200, "smoke": 900}


def claim_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """A run folder belongs to one run: an existing one is refused unless `resume` (run the
    chosen notebooks again in it — a re-analysis) or `force` (delete it and start anew)."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if force:
        shutil.rmtree(run_dir)
        return
    if not resume:
        raise FileExistsError(
            f"the run folder {run_dir} exists: pass --resume to run notebooks in it again "
            "(re-analysing what it holds), or --force to delete it and start anew"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helpers.study", description=__doc__)
    parser.add_argument("--profile", choices=PROFILES, required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument(
        "--mode",
        choices=MODE_CHOICES,
        default="both",
        help="coupled: the seed's loop, all three at once; isolated: one service at a time",
    )
    parser.add_argument("--run-id", help="folder name under --results-dir (default: timestamp)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="run notebooks in an existing run folder again"
    )
    again.add_argument("--force", action="store_true", help="delete an existing run folder first")
    parser.add_argument("--results-dir", type=Path, default=paths.RESULTS_DIR)
    parser.add_argument("--artifacts-dir", type=Path, default=paths.ARTIFACTS_DIR)
    parser.add_argument(
        "--profiles-file", type=Path, default=PROFILES_FILE, help="the load shapes (k6 profiles)"
    )
    parser.add_argument("--notebooks-dir", type=Path, default=paths.NOTEBOOKS_DIR)
    parser.add_argument(
        "--notebooks", help=f"comma-separated numbers or names (default: all of {NOTEBOOKS})"
    )
    parser.add_argument("--cell-timeout", type=int, help="seconds per cell (per profile)")
    parser.add_argument("--timeout", type=int, help="seconds for the whole study (per profile)")
    args = parser.parse_args(argv)
    args.run_id = args.run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{args.profile}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.run_id):
        parser.error(f"--run-id {args.run_id!r}: use letters, digits, '.', '_' or '-' only")
    if args.timeout is None:
        args.timeout = STUDY_TIMEOUT_S[args.profile]
    if args.cell_timeout is None:
        args.cell_timeout = CELL_TIMEOUT_S[args.profile]
    if args.cell_timeout <= 0 or args.timeout <= 0:
        parser.error("--cell-timeout and --timeout must be positive numbers of seconds")
    try:
        args.selected = select(NOTEBOOKS, args.notebooks)
        get_profile(args.profile, args.profiles_file)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    missing = [
        name for name in args.selected if not (args.notebooks_dir / f"{name}.ipynb").exists()
    ]
    if missing:
        parser.error(f"notebooks not found in {args.notebooks_dir}: {', '.join(missing)}")
    return args


def select(names: Sequence[str], wanted: str | None) -> list[str]:
    """Notebooks picked by number prefix or full name, kept in study order."""
    if not wanted:
        return list(names)
    picks = [token.strip() for token in wanted.split(",") if token.strip()]
    unknown = [p for p in picks if not any(n == p or n.startswith(f"{p}_") for n in names)]
    if unknown or not picks:
        raise ValueError(f"--notebooks {wanted!r}: unknown {unknown}; choose from {list(names)}")
    return [n for n in names if any(n == p or n.startswith(f"{p}_") for p in picks)]

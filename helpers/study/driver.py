"""`make study`: run the numbered notebooks in order with papermill into results/<run-id>/.

    python -m helpers.study --profile seed|quick|smoke --backend local|docker
                            [--run-id ID] [--results-dir DIR] [--notebooks 01,02]

Each notebook is executed into the run folder (`<name>.ipynb` + `<name>.html`) with the
study's parameters — only those its `parameters` cell declares — under a per-cell timeout
and one outer timeout for the whole study. The first failure stops the study: the failing
cell's error is printed and the exit status is 1 (2 for bad arguments). A service that exited
during the run (its stack recorded it in stack/events.json) also makes the study fail, after
the analysis has said which figures it spoils. Adding a notebook is one line in NOTEBOOKS.

Ctrl-C (or SIGTERM) stops everything within seconds: the running notebook's kernel gets the
interrupt (k6 stops gracefully and the load-test index is written with the interrupted phase
marked; the stack's teardown runs), anything still alive after a grace period is killed, the
run's cgroups are removed, and study.json says the run was interrupted (exit status 130).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import papermill
import psutil
from nbconvert import HTMLExporter

from helpers import files
from helpers.serving.local import cgroup_removal
from helpers.serving.protocol import read_exits, run_id_of
from helpers.study.cli import (  # noqa: F401  (re-exported: the driver's vocabulary)
    BACKENDS,
    CELL_TIMEOUT_S,
    NOTEBOOKS,
    PROFILES,
    STUDY_TIMEOUT_S,
    claim_run_dir,
    parse_args,
    select,
)

INTERRUPT_GRACE_S = 8.0  # the kernel's own teardown after Ctrl-C; then SIGKILL
KERNEL_NAME = "onnx-serving-study"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class NotebookFailed(RuntimeError):
    """A notebook raised, timed out, or papermill itself failed; the message says which."""


def ensure_kernel() -> str:
    """A kernelspec that starts *this* interpreter, installed into its own prefix.

    The stock `python3` spec runs whatever `python` is first on PATH; pointing at
    sys.executable makes a fresh clone's `make study` use the .venv without activating it.
    """
    spec_dir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({KERNEL_NAME})",
        "language": "python",
    }
    spec_file = spec_dir / "kernel.json"
    if not spec_file.exists() or json.loads(spec_file.read_text()) != spec:
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return KERNEL_NAME


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's `parameters` cell (papermill reads them statically)."""
    return set(papermill.inspect_notebook(str(notebook)))


def failing_cell_error(executed: Path) -> str:
    """The first error output in an executed notebook: cell number, source and traceback."""
    if not executed.exists():
        return "papermill (no output notebook was written; see its messages above)"
    notebook = nbformat.read(executed, as_version=4)
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                traceback = _ANSI.sub("", "\n".join(output.get("traceback", [])))
                if output.get("ename") == "KeyboardInterrupt":
                    traceback += "\n(interrupted: most likely the per-cell timeout was reached)"
                return (
                    f"cell {index} (In [{cell.get('execution_count')}]):\n"
                    f"{cell.source}\n---\n{traceback or output['ename'] + ': ' + output['evalue']}"
                )
    return "no cell error recorded (papermill or the kernel failed; see the messages above)"


def execute(
    notebook: Path, executed: Path, parameters: dict[str, Any], cell_timeout: int, timeout: float
) -> None:
    """Run one notebook with papermill in a child process, so the outer timeout can end it.

    papermill runs in a session of its own, so a terminal's Ctrl-C reaches only this driver,
    which then interrupts the kernel itself (`interrupt`) instead of orphaning it.
    """
    command = [
        sys.executable,
        "-m",
        "papermill",
        str(notebook),
        str(executed),
        "--parameters_yaml",
        json.dumps(parameters),  # JSON is YAML: types survive (papermill's -p guesses them)
        "--kernel",
        ensure_kernel(),
        "--execution-timeout",
        str(cell_timeout),
        "--cwd",
        str(notebook.parent),
        # Cell outputs stream to the terminal as they come, so a headless `make study` shows
        # its long work instead of a cell counter standing still.
        "--log-output",
        "--no-progress-bar",
    ]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        status = process.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        interrupt(process)
        raise NotebookFailed(
            f"{notebook.name}: the study's outer timeout was reached and the notebook was "
            f"stopped (partial output, saved after each cell: {executed})"
        ) from None
    except KeyboardInterrupt:
        interrupt(process)
        raise
    if status != 0:
        raise NotebookFailed(f"{notebook.name} failed in {failing_cell_error(executed)}")


def interrupt(papermill_process: subprocess.Popen, grace_s: float = INTERRUPT_GRACE_S) -> None:
    """Stop a running notebook and everything it started, within about `grace_s`.

    The kernel gets SIGINT — a KeyboardInterrupt in the running cell, so the study's own
    teardown runs (k6 stopped, index written, stack stopped) and papermill saves the notebook
    and exits. Whatever is still alive after `grace_s` gets SIGKILL.
    """
    try:
        tree = psutil.Process(papermill_process.pid)
        descendants = tree.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    kernels = [p for p in descendants if _is_kernel(p)]
    for kernel in kernels or [tree]:
        with contextlib.suppress(psutil.Error):
            kernel.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs([tree, *descendants], timeout=grace_s)
    for leftover in alive:
        with contextlib.suppress(psutil.Error):
            leftover.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        papermill_process.wait(timeout=5)


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def to_html(executed: Path) -> Path:
    html, _ = HTMLExporter().from_filename(str(executed))
    target = executed.with_suffix(".html")
    target.write_text(html, encoding="utf-8")
    return target


def run_notebooks(
    notebooks: Sequence[Path],
    run_dir: Path,
    parameters: dict[str, Any],
    cell_timeout: int = CELL_TIMEOUT_S["seed"],
    timeout: float = STUDY_TIMEOUT_S["seed"],
) -> int:
    """Execute `notebooks` in order into `run_dir`; 0 if all ran, 1 at the first failure (or
    when a service exited during the run), 130 when interrupted."""
    run_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    earlier = _earlier_record(run_dir)
    record: dict[str, Any] = {
        "parameters": parameters,
        "notebooks": earlier.get("notebooks", {}),  # a resumed run keeps what ran before
        "interrupted": False,
    }
    status = 0
    for notebook in notebooks:
        executed = run_dir / notebook.name
        declared = declared_parameters(notebook)
        given = {name: value for name, value in parameters.items() if name in declared}
        print(f">> {notebook.name}  parameters: {sorted(given)}", flush=True)
        started = time.monotonic()
        try:
            execute(notebook, executed, given, cell_timeout, deadline - started)
        except NotebookFailed as failure:
            print(f"\nSTUDY FAILED: {failure}", file=sys.stderr, flush=True)
            status = 1
        except KeyboardInterrupt:
            status = 130
            record["interrupted"] = True
            record["interrupted_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            record["interrupted_in"] = notebook.stem
        record["notebooks"][notebook.stem] = {
            "ok": status == 0,
            "seconds": round(time.monotonic() - started, 1),
        }
        if executed.exists():
            print(f"   {to_html(executed)}", flush=True)
        if status:
            break
    if status == 130:
        # The run's own stack and those of its parts (capacity/, ladder/…): each recorded
        # where it ran, under a run id of its own.
        stacks = {run_id_of(record.parent.parent) for record in run_dir.rglob("stack/stack.json")}
        removed = [path for run_id in sorted(stacks) for path in cgroup_removal.remove_all(run_id)]
        print(
            f"\nSTUDY INTERRUPTED in {record['interrupted_in']}: everything it started is "
            f"stopped{f' ({len(removed)} cgroups removed)' if removed else ''}; what was measured "
            f"so far is in {run_dir}",
            file=sys.stderr,
            flush=True,
        )
    exits = read_exits(run_dir, nested=True)  # 03's stack and every stack of 06–09
    record["service_exits"] = [event.sentence() for event in exits]
    if exits and status == 0:
        status = 1
        print(
            "\nSTUDY FAILED: a service stopped during the run — "
            + "; ".join(record["service_exits"])
            + " (its figures after that moment are marked not measured)",
            file=sys.stderr,
            flush=True,
        )
    files.write_json(run_dir / "study.json", record, default=str)
    if status == 0:
        print(f"\nreport: {run_dir / notebooks[-1].with_suffix('.html').name}")
    print(f"run folder: {run_dir}")
    return status


def _earlier_record(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "study.json").read_text())
    except (OSError, ValueError):
        return {}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = (args.results_dir / args.run_id).resolve()
    parameters = {
        "artifacts_dir": str(args.artifacts_dir.resolve()),
        "profiles_file": str(args.profiles_file.resolve()),
        "run_dir": str(run_dir),
        "results_dir": str(args.results_dir.resolve()),
        "run_id": args.run_id,
        "profile": args.profile,
        "backend": args.backend,
        "mode": args.mode,
        "interactive": False,  # headless: no live viewers (Netron), static output only
    }
    try:
        claim_run_dir(run_dir, args.resume, args.force)
    except FileExistsError as error:
        print(f"python -m helpers.study: error: {error}", file=sys.stderr)
        return 2
    notebooks = [args.notebooks_dir / f"{name}.ipynb" for name in args.selected]
    settings = f"profile={args.profile} backend={args.backend} mode={args.mode}"
    print(f"study {args.run_id}: {settings} → {run_dir}")
    signal.signal(signal.SIGTERM, _interrupted)  # stopped like Ctrl-C, never orphaning a kernel
    return run_notebooks(notebooks, run_dir, parameters, args.cell_timeout, args.timeout)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

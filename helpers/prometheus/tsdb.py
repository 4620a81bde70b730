"""Reopen a finished run's Prometheus TSDB, so the analysis needs nothing but the run folder.

Analysis reads Prometheus and run-folder files only, never the stack, so a run can be
re-analysed after the stack is gone — months later, on another machine with the same
Prometheus. The server is the one `make setup` installs (helpers.serving.prometheus_server), started
with no scrape targets: it replays the WAL and may compact blocks in place, but adds no
samples. Its lock file refuses a TSDB still held by a live stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from helpers import net
from helpers.serving import process, prometheus_server

_ANALYSIS_CONFIG = """# Re-reading a finished run: no scrape targets, so nothing new is written.
global:
  scrape_interval: 1m
"""


@contextlib.contextmanager
def reopen(run_dir: Path, port: int | None = None) -> Iterator[str]:
    """Start Prometheus on `run_dir/prometheus/data` (no targets) and yield its URL."""
    data_dir = Path(run_dir) / "prometheus" / "data"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no Prometheus data in {data_dir}: is {run_dir} a run folder?")
    port = port or net.free_port()
    analysis_dir = Path(run_dir) / "prometheus" / "analysis"
    analysis_dir.mkdir(parents=True, exist_ok=True)
    config = analysis_dir / "prometheus.yml"
    config.write_text(_ANALYSIS_CONFIG)
    managed = process.start(
        "prometheus-analysis",
        prometheus_server.argv(config, data_dir, port),
        analysis_dir / "prometheus.log",
    )
    try:
        try:
            net.wait_until_ready(
                f"http://127.0.0.1:{port}/-/ready",
                timeout_s=prometheus_server.READY_TIMEOUT_S,
                process=managed.popen,
            )
        except net.NotReady as error:
            raise net.NotReady(f"{error}\n{managed.log_tail()}") from error
        yield f"http://127.0.0.1:{port}"
    finally:
        managed.stop()

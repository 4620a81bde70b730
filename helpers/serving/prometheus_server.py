"""The real Prometheus server of the local backend (and the command line every one runs with).

The study keeps its time series in a real Prometheus (the Debian binary `make setup`
installs) rather than in ad-hoc files, so the analysis notebooks run the same PromQL against
either backend, and so a run can be re-analysed later: the TSDB lives in the run folder
(`run_dir/prometheus/data/`) and `helpers.prometheus.tsdb.reopen(run_dir)` starts a Prometheus
on it again.

Flags and why:
- `--web.enable-remote-write-receiver`: k6 pushes its client-side metrics (remote write);
- `--enable-feature=native-histograms`: lets k6 send its trends as native histograms
  (K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM); classic histograms still scrape as before;
- `--storage.tsdb.retention.time=100y`: a run's data is the study's record; Prometheus must
  never age it out when the run is reopened months later;
- `--web.listen-address=127.0.0.1:PORT`: nothing of the study listens beyond this host.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx

from helpers import net, paths
from helpers.serving import process

SCRAPE_INTERVAL_S = 1.0
TEMPLATE = paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.local.yml"
READY_TIMEOUT_S = 60.0  # WAL replay of a long run takes a while when reopened


@dataclass(frozen=True)
class ScrapeTarget:
    """One job: Prometheus' `job` label and the host:port whose /metrics it scrapes.
    `honor_labels` keeps the target's own `job` (the collector sets it to the service name)."""

    job: str
    address: str  # host:port
    honor_labels: bool = False


def binary() -> Path:
    """The Prometheus binary on PATH (Debian's `prometheus` package, via `make setup`)."""
    found = shutil.which("prometheus")
    if found is None:
        raise FileNotFoundError("`prometheus` not found on PATH; run `make setup`")
    return Path(found)


def version() -> str:
    """`2.42.0+ds` — recorded in stack.json so a run says which server stored its data."""
    output = subprocess.run(
        [str(binary()), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"prometheus, version (\S+)", output.stdout + output.stderr)
    return match.group(1) if match else "unknown"


def render_config(
    prometheus_address: str, exporter_address: str, services: list[ScrapeTarget]
) -> str:
    """The local configuration: the template with this run's targets filled in."""
    interval = f"{round(SCRAPE_INTERVAL_S * 1000)}ms"
    jobs = "\n".join(
        f"  - job_name: {target.job}\n"
        + ("    honor_labels: true\n" if target.honor_labels else "")
        + f'    static_configs:\n      - targets: ["{target.address}"]'
        for target in services
    )
    return Template(TEMPLATE.read_text()).substitute(
        scrape_interval=interval,
        scrape_timeout=interval,
        prometheus_target=prometheus_address,
        exporter_target=exporter_address,
        service_jobs=jobs,
    )


def argv(config: Path, data_dir: Path, port: int) -> list[str]:
    """The command line of every Prometheus the study starts (a stack's, an analysis')."""
    return [
        str(binary()),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--enable-feature=native-histograms",
        "--log.level=warn",
    ]


def start(
    config_text: str,
    run_dir: Path,
    port: int,
    log_path: Path,
    name: str = "prometheus",
) -> process.ManagedProcess:
    """Write the config to `run_dir/prometheus/` and start the server; returns when ready."""
    prom_dir = run_dir / "prometheus"
    data_dir = prom_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = prom_dir / "prometheus.yml"
    config.write_text(config_text)
    managed = process.start(name, argv(config, data_dir, port), log_path)
    try:
        net.wait_until_ready(
            f"http://127.0.0.1:{port}/-/ready", timeout_s=READY_TIMEOUT_S, process=managed.popen
        )
    except net.NotReady as error:
        tail = managed.log_tail()
        managed.stop()
        raise net.NotReady(f"Prometheus did not become ready: {error}\n{tail}") from error
    return managed


def wait_for_targets(url: str, jobs: set[str], timeout_s: float = 20.0) -> None:
    """Poll the targets API until every job in `jobs` was scraped successfully once.

    After this, a query returns the services' series: the notebooks never wait blindly.
    """

    def all_up() -> bool:
        response = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=2.0)
        response.raise_for_status()
        state = {
            t["labels"].get("job", "?"): f"{t['health']} {t.get('lastError', '')}".strip()
            for t in response.json()["data"]["activeTargets"]
        }
        if not all(state.get(job, "").startswith("up") for job in jobs):
            raise net.NotReady(str(state))
        return True

    net.poll(all_up, timeout_s, "Prometheus targets all up", interval_s=0.1)

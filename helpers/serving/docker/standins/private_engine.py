"""Our own Docker engine, for machines where none runs (CI, these machines): a workaround.

`ensure_engine()` borrows a running engine (helpers.serving.docker.engine) and leaves it alone.
Where none runs but `dockerd` is installed and we are root, it starts one of our own, separate
from any system engine: its own data-root (images and layer cache, kept between runs like the
rest of `.build/`), exec-root, pidfile, socket and config. `stop()` then stops it and
everything it started. Start and stop are observed (`net.poll` on the API and on the
process), never assumed.

Why these daemon flags (`OWNED_ENGINE_FLAGS`):
- `--bridge=none`: no default `docker0` bridge. Compose makes its own bridge per project (DNS
  by service name works) and removes it on `down`, so nothing stays behind on the host; builds
  get no network at all, which makes every image build provably offline.
- `--iptables=false --ip-masq=false`: the host's firewall is left alone (a default engine sets
  FORWARD to DROP and adds NAT rules that outlive it); published ports work via docker-proxy.
- `--config-file` pointing at an empty file: a host `/etc/docker/daemon.json` cannot conflict.

    python -m helpers.serving.docker.standins.private_engine {start|status|stop}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from helpers import net, paths
from helpers.serving import process
from helpers.serving.docker.engine import (
    DEFAULT_SOCKET,
    DockerEngine,
    EngineUnavailable,
    find_running_engine,
    ping,
)

DEFAULT_ENGINE_DIR = paths.BUILD_DIR / "docker-engine"
OWNED_ENGINE_FLAGS: tuple[str, ...] = ("--bridge=none", "--iptables=false", "--ip-masq=false")
# Extra dockerd flags, e.g. DOCKERD_EXTRA_FLAGS="--storage-driver=vfs" where overlayfs is absent.
EXTRA_FLAGS_ENV = "DOCKERD_EXTRA_FLAGS"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class OwnedEngine(DockerEngine):
    """An engine we started under `engine_dir`: only this kind is stopped by `stop()`."""

    engine_dir: Path | None = None
    pid: int | None = None

    def stop(self) -> None:
        if self.engine_dir is not None:
            stop_engine(self.engine_dir)


@dataclass(frozen=True)
class EngineLayout:
    """Where an owned engine keeps its state: the data-root under `engine_dir` (big, kept);
    exec-root, socket and pidfile in a short folder under /run or /tmp, because unix socket
    paths are limited to 108 bytes and containerd nests its own sockets in the exec-root."""

    engine_dir: Path
    run_dir: Path

    @classmethod
    def for_dir(cls, engine_dir: Path) -> EngineLayout:
        engine_dir = Path(engine_dir).resolve()
        tag = hashlib.sha256(str(engine_dir).encode()).hexdigest()[:10]
        base = Path("/run") if os.access("/run", os.W_OK) else Path("/tmp")
        return cls(engine_dir=engine_dir, run_dir=base / f"onnx-study-docker-{tag}")

    data_root = property(lambda self: self.engine_dir / "data-root")
    log_path = property(lambda self: self.engine_dir / "dockerd.log")
    config_file = property(lambda self: self.engine_dir / "daemon.json")
    exec_root = property(lambda self: self.run_dir / "exec")
    pidfile = property(lambda self: self.run_dir / "dockerd.pid")
    socket = property(lambda self: self.run_dir / "docker.sock")
    host = property(lambda self: f"unix://{self.socket}")


def why_engine_cannot_start() -> str | None:
    """A sentence saying why this machine cannot start an engine, or None if it can try."""
    if sys.platform != "linux":
        return f"dockerd runs on Linux only (this is {sys.platform}); start Docker Desktop"
    missing = [tool for tool in ("dockerd", "containerd", "runc") if shutil.which(tool) is None]
    if missing:
        return (
            f"{', '.join(missing)} not found on PATH; install Docker "
            "(Debian: apt-get install docker.io docker-compose) or start your Docker engine"
        )
    if os.geteuid() != 0:
        return "dockerd must run as root and this process is not root; start your Docker engine"
    return None


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    """True if `pid` runs (a zombie still has a pid, but it is not an engine)."""
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_engine(
    engine_dir: Path = DEFAULT_ENGINE_DIR,
    timeout_s: float = START_TIMEOUT_S,
    extra_flags: Sequence[str] = (),
) -> DockerEngine:
    """Start a dockerd of our own under `engine_dir` and wait until it answers. Idempotent:
    if our engine from an earlier call still runs and answers, it is returned as is."""
    layout = EngineLayout.for_dir(engine_dir)
    pid = _read_pid(layout.pidfile)
    if _alive(pid) and ping(layout.host):
        return OwnedEngine(host=layout.host, owned=True, engine_dir=layout.engine_dir, pid=pid)
    reason = why_engine_cannot_start()
    if reason:
        raise EngineUnavailable(f"cannot start a Docker engine: {reason}")
    _cleanup(layout)  # whatever a killed engine left: stale pidfile, socket, mounts, shims
    for folder in (layout.data_root, layout.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    layout.config_file.write_text("{}\n")
    flags = [*OWNED_ENGINE_FLAGS, *extra_flags, *os.environ.get(EXTRA_FLAGS_ENV, "").split()]
    argv = [
        "dockerd",
        f"--data-root={layout.data_root}",
        f"--exec-root={layout.exec_root}",
        f"--pidfile={layout.pidfile}",
        f"--host={layout.host}",
        f"--config-file={layout.config_file}",
        *flags,
    ]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    with layout.log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        # Own session, no parent-death signal: started from the CLI, the engine outlives us.
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    engine = OwnedEngine(layout.host, owned=True, engine_dir=layout.engine_dir, pid=popen.pid)
    try:
        net.poll(
            lambda: ping(layout.host, 1.0),
            timeout_s,
            f"dockerd at {layout.host}",
            interval_s=0.1,
            gone=net.exited(popen),
        )
        engine.info()  # `_ping` answers once the API listens; `info` once the daemon is up
    except Exception as error:
        _terminate(popen.pid)
        _cleanup(layout)
        raise EngineUnavailable(
            f"{error} ({' '.join(argv)}). End of {layout.log_path}:\n"
            f"{process.tail(layout.log_path, 25)}"
        ) from error
    return engine


def stop_engine(engine_dir: Path = DEFAULT_ENGINE_DIR) -> bool:
    """Stop our engine under `engine_dir` (SIGTERM: it stops its containers and containerd;
    SIGKILL if it hangs) and remove its runtime state. Idempotent; returns True if one ran.
    The data-root (images, build cache) is kept; `make clean` removes it."""
    layout = EngineLayout.for_dir(engine_dir)
    pid = _read_pid(layout.pidfile)
    was_running = _alive(pid)
    if was_running:
        _terminate(pid)
    _cleanup(layout)
    return was_running


def _terminate(pid: int) -> None:
    """SIGTERM (dockerd then stops its containers and containerd), SIGKILL if it hangs."""
    with contextlib.suppress(psutil.Error):
        daemon = psutil.Process(pid)
        daemon.terminate()
        try:
            net.poll(lambda: not _alive(pid), STOP_TIMEOUT_S, f"dockerd {pid} to exit", 0.1)
        except net.NotReady:
            daemon.kill()
        daemon.wait(STOP_TIMEOUT_S)  # reaps it when it is our child; at once otherwise


def _processes_under(path: Path) -> list[int]:
    """PIDs whose command line names `path`: our containerd and its shims, if dockerd died."""
    needle = str(path)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(needle in arg for arg in proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def _mounts_under(paths_: Sequence[Path]) -> list[str]:
    """Mount points under `paths_`, deepest first, so nested mounts come off before parents."""
    prefixes = tuple(str(p) for p in paths_)
    mounts = [m.mountpoint for m in psutil.disk_partitions(all=True)]
    return sorted((m for m in mounts if m.startswith(prefixes)), key=len, reverse=True)


def _cleanup(layout: EngineLayout) -> None:
    """Remove what a stopped (or killed) engine may leave: processes, mounts, runtime files."""
    for pid in _processes_under(layout.exec_root):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    for mount_point in _mounts_under([layout.exec_root, layout.data_root]):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
    shutil.rmtree(layout.run_dir, ignore_errors=True)


def ensure_engine(engine_dir: Path = DEFAULT_ENGINE_DIR) -> DockerEngine:
    """An engine that answers: a running one if any (borrowed), else our own (owned).

    Raises EngineUnavailable with the reason when there is none and none can be started.
    """
    running = find_running_engine()
    if running:
        return DockerEngine(host=running, owned=False)
    try:
        return start_engine(engine_dir)
    except EngineUnavailable as error:
        raise EngineUnavailable(
            f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', '')!r}, "
            f"{DEFAULT_SOCKET}) and {error}"
        ) from error


def _main(argv: list[str]) -> int:
    command = argv[0] if len(argv) == 1 else ""
    if command == "stop":
        print("stopped our engine" if stop_engine() else "no engine of ours was running")
    elif command == "status":
        layout = EngineLayout.for_dir(DEFAULT_ENGINE_DIR)
        ours = layout.host if _alive(_read_pid(layout.pidfile)) and ping(layout.host) else None
        print(json.dumps({"running_engine": find_running_engine(), "our_engine": ours}, indent=2))
    elif command == "start":
        try:
            engine = ensure_engine()
        except EngineUnavailable as error:
            print(error, file=sys.stderr)
            return 1
        owner = "started by us" if engine.owned else "already running, borrowed"
        print(f"export DOCKER_HOST={engine.host}  # {owner}")
    else:
        usage = "python -m helpers.serving.docker.standins.private_engine {start|stop|status}"
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

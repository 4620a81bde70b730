"""A Docker engine for the docker backend and its tests: use the one that is there, or own one.

Most users already run Docker: `ensure_engine()` finds it (`DOCKER_HOST`, then the default
socket) and leaves it alone. Where none runs but `dockerd` is installed and we are root (CI,
these machines), it starts an engine of our own, fully separate from any system one: its own
data-root (images and layer cache, kept between runs like the rest of `.build/`), exec-root,
pidfile, socket and daemon config. `stop()` then stops it and everything it started.

Readiness is observed, never assumed: we poll the API (`GET /_ping`, then `info`) until it
answers, and fail fast with the end of dockerd's log if the daemon exits first.

Why these daemon flags (`OWNED_ENGINE_FLAGS`):
- `--bridge=none`: no default `docker0` bridge. Compose creates its own user-defined bridge per
  project (container DNS by service name works), and removes it on `down`, so nothing stays
  behind on the host. Builds and `docker run` without a network get none at all, which makes
  every image build provably offline: an install step that reaches for the internet fails
  instead of silently working on one machine.
- `--iptables=false --ip-masq=false`: the engine leaves the host's firewall alone (a default
  engine sets the FORWARD policy to DROP and adds NAT rules that outlive it). Published ports
  still work, through docker-proxy on the host side.
- `--config-file` pointing at an empty file: a host `/etc/docker/daemon.json` cannot conflict.
Both a plain engine and this one were seen to run compose networks here; this one changes the
least on the host.

    python -m helpers.serving.docker.engine start   # prints `export DOCKER_HOST=...`
    python -m helpers.serving.docker.engine status
    python -m helpers.serving.docker.engine stop
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from helpers import paths

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_ENGINE_DIR = paths.BUILD_DIR / "docker-engine"
OWNED_ENGINE_FLAGS: tuple[str, ...] = ("--bridge=none", "--iptables=false", "--ip-masq=false")
# Extra dockerd flags, e.g. DOCKERD_EXTRA_FLAGS="--storage-driver=vfs" where overlayfs is absent.
EXTRA_FLAGS_ENV = "DOCKERD_EXTRA_FLAGS"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none can be started here; the message says why."""


@dataclass
class DockerEngine:
    """An engine that answers at `host` (a DOCKER_HOST URL).

    `owned` is True when this module started it: only then does `stop()` stop it.
    """

    host: str
    owned: bool
    engine_dir: Path | None = None
    pid: int | None = None
    _popen: subprocess.Popen | None = field(default=None, repr=False)

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for docker / docker-compose subprocesses that talks to this engine."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        return env

    def client(self, timeout: int = 120):
        """A Docker SDK client for this engine (the caller closes it)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def info(self) -> dict:
        with contextlib.closing(self.client(timeout=10)) as client:
            return client.info()

    def stop(self) -> None:
        """Stop the engine if we own it; a borrowed engine is left running."""
        if self.owned and self.engine_dir is not None:
            stop_engine(self.engine_dir)


# ---------------------------------------------------------------------------------------------
# Finding an engine that already runs
# ---------------------------------------------------------------------------------------------


def ping(host: str, timeout_s: float = 2.0) -> bool:
    """True when the Docker API at `host` answers `/_ping`."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency of the study
        return False
    try:
        with contextlib.closing(docker.APIClient(base_url=host, timeout=timeout_s)) as api:
            return bool(api.ping())
    except (DockerException, OSError, ValueError):
        return False
    except Exception:  # requests' connection errors are not DockerException subclasses
        return False


def find_running_engine() -> str | None:
    """The DOCKER_HOST of an engine that answers now: `$DOCKER_HOST` first, then the default."""
    candidates = []
    if os.environ.get("DOCKER_HOST"):
        candidates.append(os.environ["DOCKER_HOST"])
    candidates.append(DEFAULT_SOCKET)
    for host in candidates:
        if ping(host):
            return host
    return None


# ---------------------------------------------------------------------------------------------
# Owning an engine
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineLayout:
    """Where an owned engine keeps its state.

    The data-root lives under `engine_dir` (big, kept between runs as a layer cache). Runtime
    state (exec-root, socket, pidfile) lives in a short folder under /run or /tmp: unix socket
    paths are limited to 108 bytes and containerd nests its own sockets inside the exec-root,
    so a deep checkout path must not end up in them.
    """

    engine_dir: Path
    run_dir: Path

    @classmethod
    def for_dir(cls, engine_dir: Path) -> EngineLayout:
        engine_dir = Path(engine_dir).resolve()
        tag = hashlib.sha256(str(engine_dir).encode()).hexdigest()[:10]
        base = Path("/run") if os.access("/run", os.W_OK) else Path("/tmp")
        return cls(engine_dir=engine_dir, run_dir=base / f"onnx-study-docker-{tag}")

    @property
    def data_root(self) -> Path:
        return self.engine_dir / "data-root"

    @property
    def log_path(self) -> Path:
        return self.engine_dir / "dockerd.log"

    @property
    def config_file(self) -> Path:
        return self.engine_dir / "daemon.json"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"


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
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not an engine.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


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
        return DockerEngine(host=layout.host, owned=True, engine_dir=layout.engine_dir, pid=pid)

    reason = why_engine_cannot_start()
    if reason:
        raise EngineUnavailable(f"cannot start a Docker engine: {reason}")

    # Whatever an earlier, killed engine left behind (stale pidfile/socket, mounts, shims).
    _cleanup(layout)
    layout.engine_dir.mkdir(parents=True, exist_ok=True)
    layout.data_root.mkdir(parents=True, exist_ok=True)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
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
        # Own session: the engine outlives this Python process when started from the CLI.
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    deadline = time.monotonic() + timeout_s
    while True:
        if popen.poll() is not None:
            _cleanup(layout)
            raise EngineUnavailable(
                f"dockerd exited with status {popen.returncode} before answering "
                f"({' '.join(argv)}). End of {layout.log_path}:\n{_log_tail(layout.log_path)}"
            )
        if ping(layout.host, timeout_s=1.0):
            break
        if time.monotonic() > deadline:
            _terminate(popen.pid, popen)
            _cleanup(layout)
            raise EngineUnavailable(
                f"dockerd did not answer at {layout.host} within {timeout_s:.0f} s. "
                f"End of {layout.log_path}:\n{_log_tail(layout.log_path)}"
            )
        time.sleep(0.1)

    engine = DockerEngine(
        host=layout.host, owned=True, engine_dir=layout.engine_dir, pid=popen.pid, _popen=popen
    )
    # `_ping` answers as soon as the API listens; `info` needs the daemon fully initialised.
    try:
        engine.info()
    except Exception as error:
        stop_engine(layout.engine_dir)
        raise EngineUnavailable(f"dockerd answered /_ping but not `info`: {error}") from error
    _owned_popens[layout.engine_dir] = popen
    return engine


# Popen objects of engines this process started, so that stop() reaps them (no zombies).
_owned_popens: dict[Path, subprocess.Popen] = {}


def _terminate(pid: int, popen: subprocess.Popen | None, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM dockerd (it stops its containers and its containerd), SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait()


def stop_engine(engine_dir: Path = DEFAULT_ENGINE_DIR) -> bool:
    """Stop our engine under `engine_dir` and remove its runtime state. Returns True if one ran.

    Idempotent. The data-root (images, build cache) is kept; `make clean` removes it.
    """
    layout = EngineLayout.for_dir(engine_dir)
    pid = _read_pid(layout.pidfile)
    popen = _owned_popens.pop(layout.engine_dir, None)
    was_running = _alive(pid)
    if was_running and pid is not None:
        _terminate(pid, popen if popen is not None and popen.pid == pid else None)
    _cleanup(layout)
    return was_running


def _processes_under(path: Path) -> list[int]:
    """PIDs whose command line names `path`: our containerd and its shims, if dockerd died."""
    needle = str(path).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _mounts_under(paths_: Sequence[Path]) -> list[str]:
    prefixes = tuple(str(p) for p in paths_)
    mounts = []
    with contextlib.suppress(FileNotFoundError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefixes):
                mounts.append(mount_point)
    # Deepest first, so that nested mounts come off before their parents.
    return sorted(mounts, key=len, reverse=True)


def _cleanup(layout: EngineLayout) -> None:
    """Remove what a stopped (or killed) engine may leave: processes, mounts, runtime files."""
    for pid in _processes_under(layout.exec_root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for mount_point in _mounts_under([layout.exec_root, layout.data_root]):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True)
    shutil.rmtree(layout.run_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The one entry point the backend and the tests use
# ---------------------------------------------------------------------------------------------


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


@contextlib.contextmanager
def docker_engine(engine_dir: Path = DEFAULT_ENGINE_DIR) -> Iterator[DockerEngine]:
    """`with docker_engine() as engine:` — stops the engine afterwards only if we started it."""
    engine = ensure_engine(engine_dir)
    try:
        yield engine
    finally:
        engine.stop()


def _main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"start", "stop", "status"}:
        print("usage: python -m helpers.serving.docker.engine {start|stop|status}", file=sys.stderr)
        return 2
    command = argv[0]
    if command == "stop":
        stopped = stop_engine()
        print("stopped our engine" if stopped else "no engine of ours was running")
        return 0
    if command == "status":
        layout = EngineLayout.for_dir(DEFAULT_ENGINE_DIR)
        running = find_running_engine()
        ours = _alive(_read_pid(layout.pidfile)) and ping(layout.host)
        print(
            json.dumps(
                {"running_engine": running, "our_engine": layout.host if ours else None},
                indent=2,
            )
        )
        return 0
    try:
        engine = ensure_engine()
    except EngineUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    owner = "started by us" if engine.owned else "already running, borrowed"
    print(f"export DOCKER_HOST={engine.host}  # {owner}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

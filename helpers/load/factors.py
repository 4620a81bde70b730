"""The factors of notebook 08: each choice the post made that the study makes differently,
its published and tuned values, the environment that sets them, and how a service shows at
start that it honours them (helpers.load.ablation_plan makes instances of them,
helpers.load.ablation measures them).

A value a service does not report is "not measured" with the reason, never measured wrong:
a check reads the service's start-up log and /healthz, or what it does (a log line per request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from helpers import net
from helpers.serving.protocol import gomaxprocs_from_log
from helpers.serving.services import SERVICE_NAMES

ENDS = ("tuned", "published")
SEED_PEAK_RPS = round(16000 / 60)  # the seed's ramp tops out at 16 000 requests per minute
RECORD_NAME = "ablation.json"
PYTHON = ("python-api-pkl", "python-api-onnx")
ONNX = ("python-api-onnx", "go-api-onnx")
PROBE_REQUESTS = 20  # behavioural checks: how many requests a probe sends


# -- what a service says when it starts ----------------------------------------------------


@dataclass
class Started:
    """What one service of a running stack said about itself: its start-up log lines and its
    /healthz body as one text, the GOMAXPROCS and CPU count it logged, and a way to probe its
    behaviour (lines it logs per request)."""

    service: str
    text: str
    gomaxprocs: int | None = None
    num_cpu: int | None = None
    probe_log_lines: Callable[[], float] | None = None  # log lines per probe request

    @classmethod
    def read(cls, service: str, log_path: Path, url: str | None) -> Started:
        head = _head(log_path, 40)
        health = ""
        if url:
            try:
                health = httpx.get(f"{url}/healthz", timeout=5).text
            except httpx.HTTPError as error:
                health = f"(no /healthz: {error})"
        match = re.search(r"num_cpu\W{1,4}(\d+)", head, flags=re.IGNORECASE)

        def probe() -> float:
            return _log_lines_per_request(log_path, url) if url else math.nan

        return cls(
            service=service,
            text=f"{head}\n{health}",
            gomaxprocs=gomaxprocs_from_log(head),
            num_cpu=int(match.group(1)) if match else None,
            probe_log_lines=probe,
        )


def _head(path: Path, lines: int) -> str:
    if not Path(path).exists():
        return ""
    with Path(path).open(errors="replace") as handle:
        return "".join(line for _, line in zip(range(lines), handle, strict=False))


def _count_lines(path: Path) -> int:
    if not Path(path).exists():
        return 0
    with Path(path).open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))


def _log_lines_per_request(log_path: Path, url: str) -> float:
    """Send PROBE_REQUESTS predictions and count the log lines they added (a line per request
    is an access log, whatever the service calls its setting)."""
    before = _count_lines(log_path)
    body = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(PROBE_REQUESTS):
            client.post("/predict", json=body)

    def all_logged() -> int | None:  # the log is written asynchronously
        added = _count_lines(log_path) - before
        return added if added >= PROBE_REQUESTS else None

    try:
        return net.poll(all_logged, 2.0, "a log line per probe request", 0.1) / PROBE_REQUESTS
    except net.NotReady:  # fewer lines than requests: what was written is the answer
        return (_count_lines(log_path) - before) / PROBE_REQUESTS


# A check returns None when the service shows it runs with the value, else why it does not.
Check = Callable[[Started], str | None]


def says(pattern: str, what: str) -> Check:
    """The service's start-up log or /healthz must match `pattern` (case-insensitive)."""

    def check(started: Started) -> str | None:
        if re.search(pattern, started.text, flags=re.IGNORECASE):
            return None
        return f"its start-up log and /healthz do not say {what}"

    return check


def logs_every_request(started: Started) -> str | None:
    """An access log: the start-up record says so, or a probe sees a line per request."""
    if says(r"access[ _-]?log\W{0,4}(on|true|1)\b", "")(started) is None:
        return None
    per_request = started.probe_log_lines() if started.probe_log_lines else math.nan
    if per_request >= 0.5:
        return None
    return (
        f"it does not say its access log is on, and {PROBE_REQUESTS} requests added "
        f"{per_request:.1f} log lines each (an access log writes one)"
    )


def gomaxprocs_is(expected: Callable[[Started], int | None], what: str) -> Check:
    def check(started: Started) -> str | None:
        want = expected(started)
        if started.gomaxprocs is None:
            return "it does not log GOMAXPROCS at start"
        if want is None or started.gomaxprocs != want:
            return f"it logs GOMAXPROCS={started.gomaxprocs}, not {what} ({want})"
        return None

    return check


# -- factors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One value of a factor: the environment it takes ("{artifacts_dir}" is filled in), the
    stack's telemetry path if it decides it, and how a service shows it runs with it (None:
    nothing to show, it is the services' default)."""

    label: str
    env: Mapping[str, str] = field(default_factory=dict)
    telemetry: str | None = None
    check: Check | None = None


@dataclass(frozen=True)
class Factor:
    name: str
    title: str  # what the choice is, in a few words
    services: tuple[str, ...]
    published: Setting
    tuned: Setting
    extras: tuple[tuple[str, Setting], ...] = ()  # further values, from the tuned end only

    def setting(self, value: str) -> Setting:
        if value == "published":
            return self.published
        if value == "tuned":
            return self.tuned
        for name, setting in self.extras:
            if name == value:
                return setting
        raise KeyError(f"factor {self.name} has no value {value!r}")

    def values(self) -> list[str]:
        return ["published", "tuned", *(name for name, _ in self.extras)]


FACTORS: tuple[Factor, ...] = (
    Factor(
        "framework",
        "the prediction routes as FastAPI path operations with pydantic models",
        PYTHON,
        # The post wrote its routes as FastAPI path operations; the study's are plain
        # Starlette routes with a hand-written parser (services/CONTRACT.md).
        Setting(
            "FastAPI path operations (pydantic)",
            {"FRAMEWORK": "fastapi"},
            check=says(r"framework\W{1,4}fastapi", "that it serves FastAPI path operations"),
        ),
        Setting("lean: plain Starlette routes, hand-written parsing"),
    ),
    Factor(
        "server",
        "uvicorn's event loop and HTTP parser",
        PYTHON,
        Setting(
            "asyncio + h11 (plain uvicorn)",
            {"UVICORN_LOOP": "asyncio", "UVICORN_HTTP": "h11"},
            check=says(r"asyncio \+ h11", "asyncio + h11"),
        ),
        Setting("uvloop + httptools", {"UVICORN_LOOP": "uvloop", "UVICORN_HTTP": "httptools"}),
    ),
    Factor(
        "access_log",
        "a log line per request",
        SERVICE_NAMES,
        Setting("access log on", {"ACCESS_LOG": "1"}, check=logs_every_request),
        Setting("access log off", {"ACCESS_LOG": "0"}),
    ),
    Factor(
        "traces",
        "a span per request (Python: by the FastAPI instrumentation), exported every 3 s",
        SERVICE_NAMES,
        Setting(
            "spans via OTLP (BatchSpanProcessor, 3 s)",
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "3000"},
            check=says(r"trac\w*\W{1,4}otlp", "that spans are exported (traces otlp)"),
        ),
        Setting("no spans", {"OTEL_TRACES_EXPORTER": "none"}),
    ),
    Factor(
        "telemetry",
        "how the metrics reach Prometheus",
        SERVICE_NAMES,
        Setting(
            "pushed to the collector every 3 s",
            {"OTEL_METRIC_EXPORT_INTERVAL": "3000"},
            telemetry="collector",
            check=says(r"metrics\w*\W{1,4}otlp", "that metrics are pushed (metrics otlp)"),
        ),
        Setting("pulled by Prometheus every 1 s", telemetry="pull"),
    ),
    Factor(
        "zipmap",
        "the ZipMap output (a sequence of maps) fetched",
        ONNX,
        Setting(
            "model_zipmap.onnx",
            {"MODEL_PATH": "{artifacts_dir}/model_zipmap.onnx"},
            check=says(r"zipmap", "that it serves the ZipMap model"),
        ),
        Setting(
            "model.onnx (a probabilities tensor)", {"MODEL_PATH": "{artifacts_dir}/model.onnx"}
        ),
    ),
    Factor(
        "ort_threads",
        "ONNX Runtime's intra-op threads",
        ONNX,
        Setting(
            "ORT default (one per core)",
            {"ORT_INTRA_OP_NUM_THREADS": "0"},
            check=says(r"intra_op_threads\W{1,3}0\b", "intra-op threads 0"),
        ),
        Setting("1 thread", {"ORT_INTRA_OP_NUM_THREADS": "1"}),
    ),
    Factor(
        "ort_spinning",
        "ONNX Runtime's idle threads spinning",
        ONNX,
        Setting(
            "spinning on",
            {"ORT_ALLOW_SPINNING": "1"},
            check=says(r"spinning\W{1,3}(1|true)\b", "spinning on"),
        ),
        Setting("spinning off", {"ORT_ALLOW_SPINNING": "0"}),
    ),
    Factor(
        "gomaxprocs",
        "GOMAXPROCS under the CPU quota",
        ("go-api-onnx",),
        # The post's go.mod says go 1.23.2: GOMAXPROCS = the CPUs of the affinity mask,
        # whatever the quota. GODEBUG is the documented switch back for Go ≥ 1.25.
        Setting(
            "host CPUs (go 1.23.2)",
            {"GODEBUG": "containermaxprocs=0,updatemaxprocs=0"},
            check=gomaxprocs_is(lambda s: s.num_cpu, "the host's CPU count"),
        ),
        Setting("cgroup-aware default (Go ≥ 1.25)"),
        extras=(
            (
                "1",
                Setting("GOMAXPROCS=1", {"GOMAXPROCS": "1"}, check=gomaxprocs_is(lambda s: 1, "1")),
            ),
        ),
    ),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)


def factor(name: str, factors: Iterable[Factor] = FACTORS) -> Factor:
    for candidate in factors:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no factor {name!r}; known: {', '.join(f.name for f in factors)}")


def applicable(service: str, factors: Iterable[Factor] = FACTORS) -> list[Factor]:
    return [f for f in factors if service in f.services]

"""Serving each zoo model (notebook 09): every model by every service that can load its files,
on one stack, each beside the seed's logistic regression on the same service.

Each (model, service) pair is an instance of its own (`python-api-onnx.random-forest`) that
serves the model's zoo folder unchanged, under the same limits as the service it is; the
service itself, serving the seed's model, is the reference. Per service one paired comparison
(helpers.load.interleave) alternates windows of the reference and of every model, so a
model's CPU per request and p95 are held against logistic regression's within rounds, and a
drift of the machine cancels.

Telemetry is off in every instance of this stack: at the low rate every model can hold, the
once-a-second scrape of a service's metrics would cost more CPU than a request, and it would
cost the same whatever the model (notebook 06 prices telemetry).

A pair whose files the service cannot read (no ONNX graph: skl2onnx could not convert the
model) is not started; it is a row saying why. A pair that is started and still exits before
it is ready must not sink the others: the stack is started again without it, and the row says
what it said when it exited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import net
from helpers.load import interleave, windows
from helpers.serving.instances import SERVICE_NAMES, Instance, variant
from helpers.serving.stack import start_stack
from helpers.sizing import ZooSize

REFERENCE = "logistic regression"
TELEMETRY_OFF = {"OTEL_METRICS_EXPORTER": "none"}
HEAVIEST_QUOTA_SHARE = 0.5  # at the common rate the slowest model uses at most this of a quota
REASON_CHARS = 240
# A port the stack picked free and another process took before the instance bound it: the
# machine's doing, not the model's — the stack is started again with the same instances.
TRANSIENT = "address already in use"
TRANSIENT_RETRIES = 2
NOT_STARTED, STOPPED = "not started", "stopped while measured"  # a problem row's stage


def instance_name(service: str, model: str) -> str:
    """`python-api-onnx.random-forest`: instance names take no underscore."""
    return f"{service}.{model.replace('_', '-')}"


def model_of(instance: Instance) -> str:
    """The model an instance serves: its zoo folder is named after it; none is the seed's."""
    return Path(instance.artifacts_dir).name if instance.artifacts_dir else REFERENCE


def instances(
    plan: Mapping[str, tuple[Path, list[str]]], services: Iterable[str] = SERVICE_NAMES
) -> list[Instance]:
    """The seed's model on every service (the references), then every model the plan
    (helpers.zoo.report.serving_plan: folder and the services its files fit) on each of its
    services; all under the budget, telemetry off."""
    chosen = list(services)
    made = [variant(s, environment=dict(TELEMETRY_OFF)) for s in chosen]
    for model, (folder, fitting) in plan.items():
        for service in (s for s in chosen if s in fitting):
            made.append(
                Instance(
                    instance_name(service, model),
                    service,
                    environment=dict(TELEMETRY_OFF),
                    artifacts_dir=Path(folder),
                )
            )
    return made


def unservable(
    plan: Mapping[str, tuple[Path, list[str]]], services: Iterable[str] = SERVICE_NAMES
) -> list[dict[str, str]]:
    """Rows for the pairs the plan leaves out: the service's model file was not written."""
    return [
        {
            "model": model,
            "service": service,
            "instance": instance_name(service, model),
            "reason": "no model.onnx: skl2onnx could not convert the model",
            "stage": NOT_STARTED,
        }
        for model, (_, fitting) in plan.items()
        for service in services
        if service not in fitting
    ]


# -- starting the stack ----------------------------------------------------------------------


def failed_instance(message: str, names: Iterable[str]) -> str | None:
    """The instance a stack's NotReady names (the local backend's message starts with it)."""
    return next((n for n in names if message.startswith(f"{n} did not become ready")), None)


def reason(message: str) -> str:
    """What a NotReady says in one line: how the process ended and its last log line that
    reports an ERROR (a server logs its orderly shutdown after it), else its last line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    how = lines[0].rsplit("before ready: ", 1)[-1] if lines else "not ready"
    logged = [line for line in lines[1:] if not line.startswith("---")]
    errors = [line for line in logged if re.search(r"\bERROR\b", line)]
    last = (errors or logged or [""])[-1]
    said = f"{how}: {last}" if last else how
    return said if len(said) <= REASON_CHARS else said[: REASON_CHARS - 1] + "…"


def start(
    backend: str,
    run_dir: Path,
    artifacts_dir: Path,
    wanted: Sequence[Instance],
    progress: Callable[[str], None] = print,
    ports: dict[str, int] | None = None,
) -> tuple[Any, list[dict[str, str]]]:
    """The stack with every wanted instance that becomes ready; and, for each that did not, a
    row with why. A reference (the seed's model) that fails is the stack's failure: raised;
    an instance whose port was taken meanwhile (TRANSIENT) is no one's failure: the stack is
    started again as it was, at most TRANSIENT_RETRIES times. `ports` overrides the stack's
    defaults by name (helpers.serving.ports)."""
    remaining = list(wanted)
    dropped: list[dict[str, str]] = []
    retries = 0
    while True:
        try:
            stack = start_stack(
                backend,
                run_dir=run_dir,
                artifacts_dir=artifacts_dir,
                ports=ports,
                instances=remaining,
            )
            return stack, dropped
        except net.NotReady as error:
            said = reason(str(error))
            if TRANSIENT in str(error) and retries < TRANSIENT_RETRIES:
                retries += 1
                progress(f"{str(error).split(':')[0]}: {said}; starting the stack again as it was")
                continue
            name = failed_instance(str(error), [i.name for i in remaining])
            failed = next((i for i in remaining if i.name == name), None)
            if failed is None or model_of(failed) == REFERENCE:
                raise
            dropped.append(
                {"model": model_of(failed), "service": failed.service, "instance": failed.name,
                 "reason": said, "stage": NOT_STARTED}
            )  # fmt: skip
            progress(f"{failed.name} did not start ({said}): starting the stack without it")
            remaining.remove(failed)


# -- the comparisons -------------------------------------------------------------------------


def common_rate(cost_table: pd.DataFrame, ceiling: int, cpu_cores: float | None) -> int:
    """The rate every model is served at: `ceiling`, or lower so that the slowest single-row
    prediction measured (scikit-learn or ONNX Runtime) uses at most HEAVIEST_QUOTA_SHARE of a
    quota — an overloaded arm would measure its queue, not its model."""
    columns = [c for c in ("sklearn_median_us", "onnx_median_us") if c in cost_table]
    slowest = pd.to_numeric(cost_table[columns].stack(), errors="coerce").max()
    if not (isinstance(slowest, float) and math.isfinite(slowest) and slowest > 0):
        return ceiling
    allowed = HEAVIEST_QUOTA_SHARE * (cpu_cores or 1.0) * 1e6 / slowest
    return max(1, min(ceiling, math.floor(allowed)))


def comparisons(running: Mapping[str, Instance], rate: int) -> list[interleave.Comparison]:
    """Per service with a model running: the reference first, then each model's instance."""
    made = []
    for service in SERVICE_NAMES:
        if service not in running:
            continue
        arms = [interleave.Arm(service, REFERENCE)] + [
            interleave.Arm(name, model_of(instance))
            for name, instance in running.items()
            if instance.service == service and model_of(instance) != REFERENCE
        ]
        if len(arms) > 1:
            made.append(interleave.Comparison(service, arms, rate, tail_s=0.0))  # no telemetry
    return made


def measure(
    stack: Any,
    compared: list[interleave.Comparison],
    size: ZooSize,
    target_of: Callable[[str], Path],
    out_dir: Path,
    progress: Callable[[str], None] = print,
) -> list[interleave.Comparison]:
    """Rounds of every comparison in turn within `size.serving_s` (helpers.load.interleave)."""
    return interleave.run_sized(
        stack, compared, target_of, size.windows, size.serving_s,
        windows.WindowLog(out_dir / "serving.jsonl"), progress,
    )  # fmt: skip


def stopped(stack: Any) -> list[dict[str, str]]:
    """Instances that exited while they were measured (an OOM kill in 128 MiB, say)."""
    return [
        {
            "model": model_of(stack.instances[e.service]),
            "service": stack.instances[e.service].service,
            "instance": e.service,
            "reason": e.sentence(),
            "stage": STOPPED,
        }
        for e in stack.failures()
        if e.service in stack.instances
    ]

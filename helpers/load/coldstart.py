"""Cold start: from a process starting under the quota to its first correct prediction.

Scale to zero, an autoscaler adding a replica, a pod rescheduled: each waits for a fresh
process. Here an instance of a running stack is restarted (`Stack.restart`: the same limits,
the same model file, the page cache warm — a node that already has the image) and timed
from the moment it is spawned: until `/healthz` answers (ready) and until `/predict` first
answers a known row correctly. The service itself says when its imports and its model load
finished (`/healthz`'s `startup` stamps), which splits the time into imports, model load,
binding, and the first run (the first request's extra cost: lazy initialisation, first
allocation). The working set is read at the first answer. Repeated `attempts` times per
instance; the figures are medians with their intervals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from helpers import intervals, net

POLL_S = 0.005  # how often readiness is asked: the figures' resolution
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ColdStart:
    instance: str
    attempt: int
    spawned_at: float  # unix seconds
    ready_at: float
    first_answer_at: float
    imports_done_at: float | None  # the service's own stamps (None: it does not say)
    model_loaded_at: float | None
    working_set_bytes: float

    @property
    def total_s(self) -> float:
        return self.first_answer_at - self.spawned_at

    def phases(self) -> dict[str, float]:
        """imports, model load, bind (to ready), first run; NaN where the service is silent."""
        imports = self.imports_done_at or math.nan
        loaded = self.model_loaded_at or math.nan
        return {
            "imports_s": imports - self.spawned_at,
            "model_load_s": loaded - imports,
            "bind_s": self.ready_at - (loaded if math.isfinite(loaded) else self.spawned_at),
            "first_run_s": self.first_answer_at - self.ready_at,
            "total_s": self.total_s,
        }

    def record(self) -> dict[str, Any]:
        return asdict(self) | self.phases()


def _stamps(health: Mapping[str, Any]) -> tuple[float | None, float | None]:
    startup = health.get("startup") or {}
    return startup.get("imports_done_unix"), startup.get("model_loaded_unix")


def once(
    stack: Any, instance: str, body: dict[str, Any], expected_label: str, attempt: int
) -> ColdStart:
    """Restart `instance` and time it to its first correct answer."""
    url = stack.service_urls[instance]
    spawned = stack.restart(instance)
    with httpx.Client(timeout=5.0) as client:

        def ready() -> dict[str, Any] | None:
            try:
                response = client.get(f"{url}/healthz")
            except httpx.HTTPError as error:
                raise net.NotReady(type(error).__name__) from None
            return response.json() if response.status_code == 200 else None

        health = net.poll(ready, READY_TIMEOUT_S, f"{instance} after restart", POLL_S)
        ready_at = time.time()

        def answered() -> float | None:
            response = client.post(f"{url}/predict", json=body)
            if response.status_code == 200 and response.json().get("label") == expected_label:
                return time.time()
            raise net.NotReady(f"HTTP {response.status_code}: {response.text[:80]}")

        first = net.poll(answered, READY_TIMEOUT_S, f"{instance}'s first prediction", POLL_S)
    imports, loaded = _stamps(health)
    return ColdStart(
        instance=instance,
        attempt=attempt,
        spawned_at=spawned,
        ready_at=ready_at,
        first_answer_at=first,
        imports_done_at=imports,
        model_loaded_at=loaded,
        working_set_bytes=float(stack.usage(instance).memory_working_set_bytes),
    )


def reference(stack: Any, instance: str, ranges: dict[str, Any]) -> tuple[dict, str]:
    """A row in the middle of the training ranges and what the running instance answers for
    it: a restarted instance's first answer is correct when it says the same."""
    body = {name: round((r["min"] + r["max"]) / 2, 2) for name, r in ranges.items()}
    response = httpx.post(f"{stack.service_urls[instance]}/predict", json=body, timeout=10)
    response.raise_for_status()
    return body, response.json()["label"]


def measure(
    stack: Any,
    instances: list[str],
    attempts: int,
    ranges: dict[str, Any],
    progress: Callable[[str], None] = print,
) -> list[ColdStart]:
    """`attempts` restarts of every instance, the instances in turn (a drift hits all)."""
    expected = {instance: reference(stack, instance, ranges) for instance in instances}
    measured = []
    for attempt in range(attempts):
        for instance in instances:
            body, label = expected[instance]
            start = once(stack, instance, body, label, attempt)
            measured.append(start)
            phases = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in start.phases().items())
            progress(f"cold start {instance} #{attempt + 1}: {phases}")
    return measured


def summary(measured: list[ColdStart]) -> dict[str, dict[str, Any]]:
    """Per instance: the median of each phase with its interval over attempts, and the
    working set at the first answer."""
    by_instance: dict[str, list[ColdStart]] = {}
    for start in measured:
        by_instance.setdefault(start.instance, []).append(start)
    section = {}
    for instance, starts in by_instance.items():
        phases = [s.phases() for s in starts]
        section[instance] = {
            key: intervals.median([p[key] for p in phases], "starts").record() for key in phases[0]
        } | {
            "working_set_bytes": intervals.median(
                [s.working_set_bytes for s in starts], "starts"
            ).record(),
            "attempts": len(starts),
        }
    return section

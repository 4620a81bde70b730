"""The why, measured: the post's published configuration, the tuned one, and every factor
flipped alone from each end (notebook 07).

A *factor* is one choice the post made that the study makes differently — the server stack of
the Python services, the access log, spans, the telemetry path, the ZipMap output, ONNX
Runtime's threads and spinning, GOMAXPROCS — each with its *published* and its *tuned* value
(the services' defaults are the tuned ones; services/CONTRACT.md, README "The three
services"). A *configuration* of a service picks one value per factor that applies to it:
- the two *ends*, every factor published or every factor tuned;
- a *flip*: one end with a single factor set to its other value (tuned + that one factor
  published; published + that one factor tuned), and further values of a factor measured
  from the tuned end (GOMAXPROCS=1).
A service is measured only in the flips of the factors that apply to it.

Settings reach a service only at start, so each configuration needs a stack of its own; the
plan packs them into as few stacks as it can (one configuration per service per stack, one
telemetry path per stack: it is the stack's) and every stack runs its services one at a
time, each at the same rates. The whole plan runs `repeats` times round-robin, so a drift of
the shared machine spreads over every configuration instead of biasing the last ones, and
the spread over repeats says how far a difference can be trusted. The two ends' capacities
(helpers.load.capacity) are searched on stacks of their own, so no search's overload spills
into a step.

A factor is measured only where the service honours it, read from what the service itself
says when it starts — its start-up log and /healthz — or does (a log line per request):
a value a service does not report is "not measured" with the reason, never measured wrong.
So when a service learns a setting, its rows fill in at the next run without a code change.

Every stack lives in `run_dir/ablation/<repeat>-<stack>/` (its own Prometheus data, logs and
steps); `run_dir/ablation/ablation.json` keeps every step, what was skipped and why, what each
service said at start, and the end configurations' capacities.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.load import capacity, steps
from helpers.load.ablation_plan import Rate, StackPlan, chosen_factors, plan
from helpers.load.factors import (
    FACTORS,
    RECORD_NAME,
    SETTLE_TIMEOUT_S,
    Config,
    Factor,
    Started,
    applicable,
    environment,
)
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack
from helpers.sizing import WhySize

# -- running the plan --------------------------------------------------------------------------


@dataclass
class Result:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per step
    skipped: list[dict[str, Any]] = field(default_factory=list)  # not measured, and why
    started: list[dict[str, Any]] = field(default_factory=list)  # what each service said
    capacities: dict[str, dict[str, Any]] = field(default_factory=dict)  # end → service → …
    rates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    size: dict[str, Any] = field(default_factory=dict)
    limits_enforced: bool | None = None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = asdict(self)
        path.write_text(json.dumps(record, indent=2, default=_plain_default) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Result:
        return cls(**json.loads(Path(path).read_text()))


def _plain_default(value: Any) -> Any:
    return str(value)


def _stack_log(stack, service: str) -> Path:
    logs = Path(stack.run_dir) / "stack" / "logs"
    exact = logs / f"{service}.log"
    return exact if exact.exists() else next(iter(sorted(logs.glob(f"*{service}*.log"))), exact)


def check_values(
    started: Started, config: Config, factors: Iterable[Factor]
) -> dict[str, str | None]:
    """factor → None if the service shows it runs with the configuration's value of it, else
    why not; only the values that have something to show (the published and further ones)."""
    found = {}
    for f in applicable(started.service, factors):
        setting = f.setting(config.value_of(f.name))
        if setting.check is not None:
            found[f.name] = setting.check(started)
    return found


MAX_REPEATS = 3  # notebook 07 has a cell per repeat (the study's timeout is per cell)


class Ablation:
    """One run of the plan, a part at a time, so a notebook can give each part a cell of its
    own (the study bounds every cell's time): `capacities()` searches both ends' capacity on
    stacks of their own; `repeat(i)` starts every stack of the plan once and measures every
    member at every rate; `finish()` checks every repeat ran and returns the result. What each
    service honours is learnt in the first repeat, where each end runs before its flips."""

    def __init__(
        self,
        backend: str,
        run_dir: Path,
        artifacts_dir: Path,
        rates: Mapping[str, list[Rate]],
        size: WhySize,
        stack_options: Mapping[str, Any] | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        if not 1 <= size.repeats <= MAX_REPEATS:
            raise ValueError(f"repeats={size.repeats}: expected 1..{MAX_REPEATS}")
        self.backend, self.artifacts_dir = backend, Path(artifacts_dir)
        self.rates, self.size, self.progress = rates, size, progress
        self.stack_options = dict(stack_options or {})
        self.factors = chosen_factors(size)
        self.stacks = plan(list(rates), size.ends, size.extras, self.factors, self.artifacts_dir)
        self.out = Path(run_dir) / "ablation"
        # A new run measures anew: an earlier one's logs and TSDBs would answer for it (the
        # logs are appended to, the TSDB keeps the old series beside the new).
        shutil.rmtree(self.out, ignore_errors=True)
        self.result = Result(
            rates={s: [asdict(r) for r in rs] for s, rs in rates.items()}, size=asdict(size)
        )
        # (service, factor, value) → None (honoured) or why not, as each stack finds out.
        self.honoured: dict[tuple[str, str, str], str | None] = {}
        self.repeats_done: list[int] = []
        self.began = time.monotonic()

    def _elapsed(self) -> str:
        return f"{(time.monotonic() - self.began) / 60:.1f} min so far"

    def capacities(self) -> dict[str, dict[str, Any]]:
        """Each end configuration's capacity per service (helpers.load.capacity.search), on a
        stack of its own; nothing when the size gives no budget."""
        if self.size.capacity_budget_s <= 0:
            self.progress(
                f"no capacity search at this size (budget {self.size.capacity_budget_s:g} s)"
            )
            return self.result.capacities
        services = list(self.rates)
        for end in self.size.ends:
            config = Config(end)
            env = {s: environment(s, config, self.artifacts_dir)[0] for s in services}
            telemetry = environment(services[0], config, self.artifacts_dir)[1]
            self.progress(f"capacity of the {end} configuration ({telemetry}) — {self._elapsed()}")
            with self._stack(self.out / f"capacity-{end}", env, telemetry) as stack:
                budget = self.size.capacity_budget_s / len(services)
                for service in services:
                    found = capacity.search(
                        stack, service, stack.run_dir / "steps", budget, **self.size.search
                    )
                    record = capacity.record([found])[service]
                    self.result.capacities.setdefault(end, {})[service] = record
                    self.progress(f"    {service:<16} {end}: capacity {found.display} req/s")
        self.result.save(self.out / RECORD_NAME)
        return self.result.capacities

    def repeat(self, index: int) -> None:
        """Repeat `index` (0-based) of the whole plan; a repeat the size does not ask for is
        said and skipped."""
        if index >= self.size.repeats:
            self.progress(
                f"this size measures {self.size.repeats} repeat(s): no repeat {index + 1}"
            )
            return
        if index and index - 1 not in self.repeats_done:
            raise RuntimeError(f"repeat {index + 1} before repeat {index}: run them in order")
        for number, stack_plan in enumerate(self.stacks):
            members = ", ".join(c.label for c in stack_plan.members.values())
            self.progress(
                f"[{number + 1}/{len(self.stacks)}] repeat {index + 1}/{self.size.repeats}, "
                f"{stack_plan.name} ({stack_plan.telemetry}): {members} — {self._elapsed()}"
            )
            self.run_stack(self.out / f"r{index}-{stack_plan.name}", stack_plan, index)
        self.repeats_done.append(index)
        self.result.save(self.out / RECORD_NAME)

    def finish(self) -> Result:
        missing = [i + 1 for i in range(self.size.repeats) if i not in self.repeats_done]
        if missing:
            raise RuntimeError(f"repeats {missing} of {self.size.repeats} did not run")
        return self.result

    def _stack(self, stack_dir: Path, service_env: dict[str, dict[str, str]], telemetry: str):
        return start_stack(
            self.backend,
            run_dir=stack_dir,
            artifacts_dir=self.artifacts_dir,
            service_env=service_env,
            telemetry=telemetry,
            **self.stack_options,
        )

    def run_stack(self, stack_dir: Path, stack_plan: StackPlan, repeat: int) -> None:
        service_env = {
            service: environment(service, config, self.artifacts_dir)[0]
            for service, config in stack_plan.members.items()
        }
        with self._stack(stack_dir, service_env, stack_plan.telemetry) as stack:
            self.result.limits_enforced = stack.limits_enforced
            ranges = feature_ranges(stack.run_dir)
            for service in stack_plan.members:
                self.member(stack, stack_dir, stack_plan, service, repeat, ranges, service_env)

    def member(self, stack, stack_dir, stack_plan, service, repeat, ranges, service_env) -> None:
        config = stack_plan.members[service]
        started = Started.read(service, _stack_log(stack, service), stack.service_urls[service])
        found = check_values(started, config, FACTORS)
        for name, reason in found.items():
            self.honoured[(service, name, config.value_of(name))] = reason
        not_honoured = {n: r for n, r in found.items() if r is not None}
        described = {"service": service, "config": config.label, **asdict(config)}
        if repeat == 0:
            self.result.started.append(
                described
                | {
                    "gomaxprocs": started.gomaxprocs,
                    "num_cpu": started.num_cpu,
                    "not_honoured": not_honoured,
                    "environment": service_env[service],
                    "telemetry": stack_plan.telemetry,
                }
            )
        problem = _flip_problem(service, config, self.honoured)
        if problem:
            if repeat == 0:
                self.result.skipped.append(described | {"reason": problem})
            self.progress(f"    {service:<16} {config.label}: not measured — {problem}")
            return
        for rate in self.rates[service]:
            row = _measure(stack, service, rate, self.size, ranges, stack_dir, repeat)
            row |= described | {
                "telemetry": stack_plan.telemetry,
                "gomaxprocs": started.gomaxprocs,
                "not_honoured": sorted(not_honoured),
            }
            self.result.rows.append(row)
            self.progress(f"  [{config.label}] {capacity.describe(_as_step(row)).strip()}")


def _flip_problem(
    service: str, config: Config, honoured: Mapping[tuple[str, str, str], str | None]
) -> str | None:
    """Why a flip would measure the end again (the service ignores one of the two values it
    compares), or None. An end is always measured: what it ignores is recorded with it."""
    if config.factor is None:
        return None
    for value in (config.end, config.value):
        key = (service, config.factor, value)
        if key in honoured and honoured[key] is not None:
            return f"{config.factor}={value} is not honoured: {honoured[key]}"
    return None


def _measure(stack, service: str, rate: Rate, size: WhySize, ranges, out_dir: Path, repeat: int):
    step = steps.measure(stack, service, rate.rps, size.step_s, ranges, out_dir, repeat)
    settled_at, settled = steps.server_settled(
        stack.prometheus_url, service, step.started_at, step.requests, SETTLE_TIMEOUT_S
    )
    figures = steps.server_figures(
        stack.prometheus_url, service, step.started_at, step.ended_at, settled_at
    )
    return asdict(step) | figures | {"rate_label": rate.label, "server_settled": settled}


def _as_step(row: Mapping[str, Any]) -> steps.Step:
    names = steps.Step.__dataclass_fields__
    return steps.Step(**{k: v for k, v in row.items() if k in names})

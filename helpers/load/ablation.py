"""The why, measured (notebook 08): every configuration of helpers.load.ablation_plan as an
instance of one stack, both ends' capacity searched at once, and per service one paired
comparison — the tuned end (the reference), the published end, each factor flipped alone —
in interleaved windows (helpers.load.interleave), so a drift of the machine hits every arm of
a round and cancels.

A factor is measured only where the service honours it, read from what the instance itself
says when it starts — its start-up log and /healthz — or does (a log line per request): a
value an instance does not show is "not measured" with the reason, never measured wrong. So
when a service learns a setting, its arm joins the comparison at the next run without a code
change. The published end is always measured; what it does not honour is recorded with it.

`run_dir/ablation/` keeps the stack's record, logs and TSDB, the windows of the searches and
of the comparisons (JSON lines, re-readable: `comparisons()` re-makes them), and
ablation.json: what each instance said at start, what was not measured and why, both ends'
capacities, the rates and every comparison's record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers import files
from helpers.load import capacity, interleave, search, windows
from helpers.load.ablation_plan import PUBLISHED, TUNED, Config, Configuration, Rate
from helpers.load.factors import FACTORS, RECORD_NAME, Factor, Started, applicable
from helpers.sizing import WhySize

SEARCH_LOG = "searches.jsonl"
COMPARISON_LOG = "comparisons.jsonl"
ENDS = (TUNED, PUBLISHED)


# -- what each instance says it runs ---------------------------------------------------------


def log_of(stack: Any, name: str) -> Path:
    """The instance's own log in the stack's record."""
    logs = Path(stack.run_dir) / "stack" / "logs"
    exact = logs / f"{name}.log"
    return exact if exact.exists() else next(iter(sorted(logs.glob(f"*{name}*.log"))), exact)


def check_values(
    started: Started, config: Config, factors: Iterable[Factor] = FACTORS
) -> dict[str, str | None]:
    """factor → None if the service shows it runs with the configuration's value of it, else
    why not; only the values that have something to show (the published and further ones)."""
    found = {}
    for f in applicable(started.service, factors):
        setting = f.setting(config.value_of(f.name))
        if setting.check is not None:
            found[f.name] = setting.check(started)
    return found


def read_started(stack: Any, configurations: Iterable[Configuration]) -> dict[str, dict[str, Any]]:
    """instance → what it said at start: the GOMAXPROCS and CPUs it logged, and per factor it
    could show, None (honoured) or why not; with the environment and telemetry path it got."""
    said = {}
    for c in configurations:
        started = Started.read(c.service, log_of(stack, c.name), stack.service_urls[c.name])
        instance = stack.instances[c.name]
        said[c.name] = {
            "instance": c.name,
            "service": c.service,
            "label": c.label,
            **asdict(c.config),
            "gomaxprocs": started.gomaxprocs,
            "num_cpu": started.num_cpu,
            "checked": check_values(started, c.config),
            "environment": dict(instance.environment),
            "telemetry": instance.telemetry,
        }
    return said


def not_honoured(record: Mapping[str, Any]) -> dict[str, str]:
    return {name: why for name, why in record["checked"].items() if why}


def flip_problem(configuration: Configuration, said: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why a flip would measure the tuned end again — its instance, or the tuned end's, does
    not show the value it stands for — or None. The ends are always measured."""
    name, value = configuration.factor, configuration.config.value
    if name is None:
        return None
    mine = said[configuration.name]["checked"].get(name)
    if mine:
        return f"{name}={value} is not honoured: {mine}"
    tuned = said[f"{configuration.service}.{TUNED}"]["checked"].get(name)
    if tuned:
        return f"{name}={TUNED} is not honoured: {tuned}"
    return None


def plan_comparisons(
    configurations: Iterable[Configuration],
    said: Mapping[str, Mapping[str, Any]],
    rates: Mapping[str, Rate],
) -> tuple[list[interleave.Comparison], list[dict[str, Any]]]:
    """Per service one comparison — the tuned end first (the reference), the published end,
    then every flip its instance honours — and the flips left out, with the reason."""
    arms: dict[str, list[interleave.Arm]] = {}
    skipped = []
    for c in configurations:
        problem = flip_problem(c, said)
        if problem:
            skipped.append(
                {"service": c.service, "label": c.label, "instance": c.name, **asdict(c.config),
                 "reason": problem}
            )  # fmt: skip
            continue
        arms.setdefault(c.service, []).append(interleave.Arm(c.name, c.label))
    made = [interleave.Comparison(s, found, rates[s].rps) for s, found in arms.items()]
    return made, skipped


# -- measuring -------------------------------------------------------------------------------


def search_ends(
    stack: Any,
    services: Iterable[str],
    size: WhySize,
    ranges: dict[str, Any],
    out_dir: Path,
    progress: Callable[[str], None] = print,
    from_06: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, search.Search]]:
    """end → service → its capacity search; both ends of every service searched at once, a
    step of each in turn (helpers.load.search), within `size.capacity_s` ({} when 0). With
    notebook 06's capacity of a service, its pilots start nearer the answer: a third of it for
    the tuned end (the service as served), a sixth for the published one."""
    if size.capacity_s <= 0:
        progress(f"no capacity search at this size (budget {size.capacity_s:g} s)")
        return {}
    target_of = capacity.targets(stack, ranges, out_dir / "targets")
    log = windows.WindowLog(out_dir / SEARCH_LOG)
    pilot_share = {"tuned": 1 / 3, "published": 1 / 6}
    known = {s: ((from_06 or {}).get(s) or {}).get("rate_rps") or 0 for s in services}
    found = {
        end: {
            s: search.Search(
                f"{s}.{end}",
                stack.limits[f"{s}.{end}"].cpu_cores,
                pilot_rate=max(50, round(pilot_share[end] * known[s])),
                precision=size.precision,
            )
            for s in services
        }
        for end in ENDS
    }

    everyone = [s for by_service in found.values() for s in by_service.values()]
    capacity.search_at_once(
        stack, everyone, target_of, size.windows, size.capacity_s, log, progress
    )
    return found


def compare(
    stack: Any,
    comparisons: list[interleave.Comparison],
    size: WhySize,
    ranges: dict[str, Any],
    out_dir: Path,
    progress: Callable[[str], None] = print,
) -> list[interleave.Comparison]:
    """Every service's comparison at once, rounds alternating between services, until each
    arm's effect is settled or the rounds or `size.comparisons_s` run out."""
    target_of = capacity.targets(stack, ranges, out_dir / "targets")
    return interleave.run_sized(
        stack, comparisons, target_of, size.windows, size.comparisons_s,
        windows.WindowLog(out_dir / COMPARISON_LOG), progress,
    )  # fmt: skip


# -- the record ------------------------------------------------------------------------------


@dataclass
class Record:
    """ablation.json: everything notebook 08 measured, in the run folder."""

    size: dict[str, Any]
    rates: dict[str, dict[str, Any]]  # service → Rate.record()
    capacities: dict[str, dict[str, Any]] = field(default_factory=dict)  # end → service → …
    started: list[dict[str, Any]] = field(default_factory=list)  # what each instance said
    skipped: list[dict[str, Any]] = field(default_factory=list)  # not measured, and why
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # each one's record
    limits_enforced: bool | None = None

    def save(self, out_dir: Path) -> Path:
        return files.write_json(Path(out_dir) / RECORD_NAME, asdict(self), default=str)

    @classmethod
    def load(cls, out_dir: Path) -> Record:
        return cls(**json.loads((Path(out_dir) / RECORD_NAME).read_text()))


def capacity_records(found: Mapping[str, Mapping[str, search.Search]]) -> dict[str, Any]:
    return {end: {s: f.as_record() for s, f in by.items()} for end, by in found.items()}


def comparisons(out_dir: Path) -> list[interleave.Comparison]:
    """The comparisons of a run folder re-made from ablation.json and the logged windows (the
    run re-analysed later gives the same effects)."""
    record = Record.load(out_dir)
    rows = windows.read(Path(out_dir) / COMPARISON_LOG)
    made = []
    for c in record.comparisons:
        arms = [interleave.Arm(a["target"], label) for label, a in c["arms"].items()]
        made.append(interleave.from_log(rows, interleave.Comparison(c["name"], arms, c["rate"])))
    return made

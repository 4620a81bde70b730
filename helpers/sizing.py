"""How much each notebook measures, per profile: one object per profile, a field per notebook.

`for_profile("quick")` is what notebooks 02, 06, 07 and 08 read their sizes from (how many
single-row calls, how long a step, how many repeats, how long a capacity search may take), so
a profile is one line to read and the `smoke` profile that `make test` runs is the same code
path with smaller numbers. A leaf: it imports no other room (the why's factor names are plain
strings here; helpers.load.ablation_plan turns them into factors).

The load test's shape (notebook 04) is not here: it is k6's, in k6/profiles.json.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("smoke", "quick", "seed")


@dataclass(frozen=True)
class ConvertSize:
    """Notebook 02: single-row latency of the pickle and of ONNX Runtime."""

    bench_iterations: int  # single-row calls per runtime


@dataclass(frozen=True)
class CapacitySize:
    """Notebook 06 (and the zoo's serving steps in 08): how long it measures (smoke: about a
    minute in all)."""

    step_s: float  # one constant-rate step
    repeats: int  # per capacity rate and per ladder rung
    start_rate: int
    max_rate: int
    precision: float  # of the capacity bisection (relative)
    budget_s: float  # of the capacity search, all services
    light_rates: tuple[int, ...]  # the CPU curve's trickle
    fractions: tuple[float, ...]  # the CPU curve's points, as fractions of capacity

    @property
    def search(self) -> dict[str, float]:
        """The keyword arguments of helpers.load.capacity.run/search."""
        return {
            "step_s": self.step_s,
            "repeats": self.repeats,
            "start_rate": self.start_rate,
            "max_rate": self.max_rate,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class WhySize:
    """Notebook 07: how much of the ablation it measures."""

    step_s: float  # one constant-rate step (≥ 4 s: its CPU is read from 1 s scrapes)
    repeats: int  # of the whole plan, round-robin
    heavy: bool  # also the heavier rate (else the seed's peak only)
    ends: tuple[str, ...]  # the ends measured, and flipped from
    extras: bool  # further values of a factor (GOMAXPROCS=1)
    factors: tuple[str, ...] | None  # factor names; None: every factor
    capacity_budget_s: float  # per end configuration, all services; 0: no capacity search
    capacity_step_s: float = 5.0
    capacity_repeats: int = 1
    capacity_precision: float = 0.15

    @property
    def search(self) -> dict[str, float]:
        """The keyword arguments of helpers.load.capacity.search for the ends' capacities."""
        return {
            "step_s": self.capacity_step_s,
            "repeats": self.capacity_repeats,
            "precision": self.capacity_precision,
            "start_rate": 50,
            "max_rate": 12800,
        }


@dataclass(frozen=True)
class ZooSize:
    """Notebook 08: each zoo model's costs, and serving it (steps as notebook 06's)."""

    bench_iterations: int  # single-row calls per runtime and model
    load_repeats: int  # warm loads per model file
    serving: CapacitySize  # steps of the serving measurements; the heaviest model's search


@dataclass(frozen=True)
class Sizing:
    profile: str
    convert: ConvertSize
    capacity: CapacitySize
    why: WhySize
    zoo: ZooSize


# Steps of at least 4 s: a step's CPU is read from the 1 s scrapes inside it.
_CAPACITY = {
    "smoke": CapacitySize(4.0, 1, 50, 400, 0.5, 60, (10,), (0.5, 1.0)),
    "quick": CapacitySize(5.0, 2, 50, 12800, 0.1, 420, (10, 50), (0.25, 0.5, 0.75, 1.0)),
    "seed": CapacitySize(10.0, 3, 50, 12800, 0.05, 1200, (10, 50), (0.25, 0.5, 0.75, 1.0)),
}
_BOTH_ENDS = ("tuned", "published")
_WHY = {
    # About two minutes: the tuned end and four of its flips, one rate, once.
    "smoke": WhySize(
        4.0, 1, False, ("tuned",), False, ("access_log", "traces", "telemetry", "gomaxprocs"), 0
    ),
    "quick": WhySize(4.0, 2, True, _BOTH_ENDS, True, None, 240),
    "seed": WhySize(8.0, 3, True, _BOTH_ENDS, True, None, 480, 8.0, 2, 0.1),
}
_CONVERT_ITERATIONS = {"seed": 5000, "quick": 2000, "smoke": 300}
_ZOO_ITERATIONS = {"seed": 2000, "quick": 1000, "smoke": 100}
_ZOO_LOAD_REPEATS = {"seed": 20, "quick": 10, "smoke": 3}


def for_profile(profile: str) -> Sizing:
    """Every notebook's sizes at `profile`; an unknown profile stops here, listing the known."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return Sizing(
        profile=profile,
        convert=ConvertSize(_CONVERT_ITERATIONS[profile]),
        capacity=_CAPACITY[profile],
        why=_WHY[profile],
        zoo=ZooSize(_ZOO_ITERATIONS[profile], _ZOO_LOAD_REPEATS[profile], _CAPACITY[profile]),
    )

"""How much each notebook measures, per profile: one object per profile, a field per notebook.

`for_profile("quick")` is what notebooks 02 and 06–09 read their sizes from, so a profile is
one place to read and the `smoke` profile `make test` runs is the same code path with smaller
numbers. Measurements stop adaptively (a step when it is stable, a comparison when its
effects are settled), so most sizes are *budgets*: the most a section may take, which is also
what the notebook's progress line counts down from. A leaf: it imports no other room.

Budgets, measured on a 2-core machine: `quick` runs the whole study in about 20 minutes, the
default `seed` in about an hour, 33 minutes of it the post's ramp in both modes (notebook
04, whose shape is k6's, in k6/profiles.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROFILES = ("smoke", "quick", "seed")


@dataclass(frozen=True)
class ConvertSize:
    """Notebook 02: single-row latency of the pickle and of ONNX Runtime."""

    bench_iterations: int  # single-row calls per runtime


@dataclass(frozen=True)
class Windows:
    """How every measurement of 06–09 is made of windows (helpers.load.windows)."""

    window_s: float  # one window
    max_windows: int  # per step, before it is called unstable
    min_rounds: int  # of a paired comparison, before it may settle
    max_rounds: int
    min_effect: float  # an effect whose interval lies within ±this is "none"


@dataclass(frozen=True)
class CapacitySize:
    """Notebook 06: capacity, the overhead ladder (floors), the generators' cross-check."""

    windows: Windows
    precision: float  # of the capacity bracket (relative)
    pilot_rate: int
    max_rate: int
    search_s: float  # budget of the searches, all services at once
    trickle_rates: tuple[int, ...]  # the CPU curve's light end
    ladder_fraction: float  # of each service's capacity the ladder is measured at
    ladder_s: float
    crosscheck_rounds: int

    def plan(self) -> dict[str, float]:
        return {
            "stack": 20.0,
            "capacity": self.search_s,
            "trickle": 4.0 * len(self.trickle_rates) * 3,
            "ladder": self.ladder_s,
            "generators": 3 * self.crosscheck_rounds * (2 * self.windows.window_s + 3.0),
        }


@dataclass(frozen=True)
class SizingSize:
    """Notebook 07: batching, scaling with CPU, cold start — and their money."""

    windows: Windows
    batch_sizes: tuple[int, ...]
    cpu_sizes: tuple[float, ...]  # besides the budget's 0.5, measured in 06
    scaling_precision: float
    scaling_s: float
    cold_starts: int  # per service

    def plan(self) -> dict[str, float]:
        return {
            "stack": 25.0,
            "batching": 3 * len(self.batch_sizes) * self.windows.max_windows * 1.3,
            "scaling": self.scaling_s,
            "cold start": 3 * self.cold_starts * 5.0,
        }


@dataclass(frozen=True)
class WhySize:
    """Notebook 08: the post's configuration against the tuned one, each factor alone."""

    windows: Windows
    capacity_s: float  # both ends' capacity searches; 0: none (the rate from 06)
    precision: float
    comparisons_s: float  # the paired comparisons of every service
    factors: tuple[str, ...] | None = None  # None: every factor
    extras: bool = True  # further values of a factor (GOMAXPROCS=1)
    rate_share_of_published: float = 0.7  # the comparisons' rate (see helpers.load.ablation)
    rate_share_of_tuned: float = 0.5

    def plan(self) -> dict[str, float]:
        return {"stack": 30.0, "ends": self.capacity_s, "factors": self.comparisons_s}


@dataclass(frozen=True)
class ZooSize:
    """Notebook 09: each zoo model's costs; every model served beside logistic regression on
    one stack (paired), the heaviest one's capacity and cold start."""

    bench_iterations: int  # single-row calls per runtime and model
    load_repeats: int  # warm loads per model file
    windows: Windows
    serving_rate: int  # every model, every service, the same rate (at most: see zoo.serving)
    serving_s: float  # the paired comparisons of every service
    capacity_s: float  # the heaviest model's searches, all its instances at once
    precision: float
    cold_starts: int  # per instance: the heaviest model's and logistic regression's
    models: tuple[str, ...] = field(default=())  # () = the notebook's parameter decides

    def plan(self) -> dict[str, float]:
        return {
            "stack": 45.0,  # some twenty instances, most of them Python importing scikit-learn
            "serving": self.serving_s + 5.0,  # + the last round's CPU tails
            "capacity": self.capacity_s,
            "cold start": 6 * self.cold_starts * 4.0,  # 3 services × (heaviest + reference)
        }


@dataclass(frozen=True)
class Sizing:
    profile: str
    convert: ConvertSize
    capacity: CapacitySize
    sizing: SizingSize
    why: WhySize
    zoo: ZooSize


_WINDOWS = {
    "smoke": Windows(0.5, 3, 2, 2, 0.10),
    "quick": Windows(1.0, 6, 4, 10, 0.05),
    "seed": Windows(1.0, 8, 5, 14, 0.05),  # the seed's hour is mostly its 33-minute ramp
}
_CAPACITY = {
    "smoke": CapacitySize(_WINDOWS["smoke"], 0.5, 50, 800, 20, (10,), 0.5, 10, 1),
    "quick": CapacitySize(_WINDOWS["quick"], 0.10, 50, 20000, 120, (10,), 0.5, 60, 2),
    "seed": CapacitySize(_WINDOWS["seed"], 0.07, 50, 20000, 160, (10,), 0.5, 80, 3),
}
_SIZING = {
    "smoke": SizingSize(Windows(0.5, 2, 2, 2, 0.10), (1, 64), (0.25,), 0.5, 15, 2),
    "quick": SizingSize(
        Windows(1.0, 3, 4, 10, 0.05), (1, 4, 16, 64, 256, 1024), (0.25, 1.0), 0.15, 110, 5
    ),
    "seed": SizingSize(
        Windows(1.0, 4, 5, 14, 0.05), (1, 4, 16, 64, 256, 1024), (0.25, 1.0, 2.0), 0.12, 150, 7
    ),
}
_WHY = {
    "smoke": WhySize(
        _WINDOWS["smoke"], 0, 0.5, 15, ("access_log", "traces", "telemetry", "gomaxprocs"), False
    ),
    "quick": WhySize(_WINDOWS["quick"], 50, 0.15, 100),
    "seed": WhySize(_WINDOWS["seed"], 70, 0.12, 150),
}
_ZOO = {
    "smoke": ZooSize(100, 3, _WINDOWS["smoke"], 20, 20, 15, 0.5, 2),
    "quick": ZooSize(1000, 10, _WINDOWS["quick"], 50, 60, 40, 0.15, 5),
    "seed": ZooSize(2000, 20, _WINDOWS["seed"], 50, 80, 60, 0.12, 5),
}
_CONVERT_ITERATIONS = {"seed": 5000, "quick": 2000, "smoke": 300}


def for_profile(profile: str) -> Sizing:
    """Every notebook's sizes at `profile`; an unknown profile stops here, listing the known."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return Sizing(
        profile=profile,
        convert=ConvertSize(_CONVERT_ITERATIONS[profile]),
        capacity=_CAPACITY[profile],
        sizing=_SIZING[profile],
        why=_WHY[profile],
        zoo=_ZOO[profile],
    )

"""The plan of notebook 07: which (service, configuration) pairs are measured, packed into as
few stacks as fit (one configuration per service per stack, one telemetry path per stack);
which factors a profile's size flips (the sizes: helpers.sizing); and the rates each service is
measured at.
helpers.load.ablation runs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.load.factors import ENDS, FACTORS, SEED_PEAK_RPS, Config, Factor, environment, factor
from helpers.sizing import WhySize


@dataclass
class StackPlan:
    name: str
    telemetry: str
    members: dict[str, Config]


def flips(
    services: Iterable[str], ends: Iterable[str], extras: bool, factors: Iterable[Factor]
) -> list[tuple[str, Config]]:
    """Every (service, flip) to measure: from each end, each factor set to its other value
    (and its further values from the tuned end), for the services it applies to."""
    wanted = []
    for end in ends:
        other = "published" if end == "tuned" else "tuned"
        for f in factors:
            values = [other] + ([n for n, _ in f.extras] if extras and end == "tuned" else [])
            for value in values:
                wanted += [(s, Config(end, f.name, value)) for s in services if s in f.services]
    return wanted


def plan(
    services: Iterable[str],
    ends: Iterable[str] = ENDS,
    extras: bool = True,
    factors: Iterable[Factor] = FACTORS,
    artifacts_dir: Path = Path("artifacts"),
) -> list[StackPlan]:
    """The stacks to start: one per end (every service), then the flips of `factors` packed
    first-fit — a stack takes one configuration per service, and all of its members share
    its telemetry path. Factors left out of `factors` are not flipped: they keep their end's
    value (every configuration is built from all of FACTORS)."""
    services, ends, factors = list(services), list(ends), list(factors)
    stacks = []
    for end in ends:
        telemetry = environment(services[0], Config(end), artifacts_dir)[1]
        stacks.append(StackPlan(end, telemetry, {s: Config(end) for s in services}))
    packed: list[StackPlan] = []
    for service, config in flips(services, ends, extras, factors):
        telemetry = environment(service, config, artifacts_dir)[1]
        home = next(
            (p for p in packed if p.telemetry == telemetry and service not in p.members), None
        )
        if home is None:
            home = StackPlan(f"flips-{len(packed) + 1:02d}-{telemetry}", telemetry, {})
            packed.append(home)
        home.members[service] = config
    return stacks + packed


def chosen_factors(size: WhySize) -> list[Factor]:
    """The factors a size flips (helpers.sizing names them; None: every factor)."""
    return [factor(n) for n in size.factors] if size.factors else list(FACTORS)


# -- rates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    label: str  # "seed peak" | "heavy"
    rps: int
    source: str  # where the number comes from, in words


def rates_for(
    services: Iterable[str],
    capacity_section: Mapping[str, Any] | None,
    heavy: bool,
    heavy_fraction: float = 0.8,
    heavy_default_rps: int = 400,
    seed_rps: int = SEED_PEAK_RPS,
) -> dict[str, list[Rate]]:
    """The seed's peak for every service, and (if `heavy`) `heavy_fraction` of the service's
    tuned capacity from summary.json's `capacity` section (notebook 06), else the default."""
    chosen = {}
    for service in services:
        rates = [Rate("seed peak", seed_rps, "the seed's peak, 16 000 requests/min")]
        if heavy:
            measured = (capacity_section or {}).get(service, {}).get("rate_rps")
            if measured:
                rps = max(1, round(heavy_fraction * measured))
                source = f"{100 * heavy_fraction:.0f} % of the tuned capacity notebook 06 measured"
                source += f" ({capacity_section[service].get('display', measured)} req/s)"
            else:
                rps, source = heavy_default_rps, "the stated default (no capacity from 06)"
            rates.append(Rate("heavy", rps, source))
        chosen[service] = rates
    return chosen

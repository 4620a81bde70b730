"""Notebook 08's plan: every configuration it measures, each an instance of one stack, and the
one rate each service's paired comparison runs at.

A *configuration* of a service picks one value per factor that applies to it
(helpers.load.factors): the two *ends* — every factor tuned, every factor published — and the
*flips*: the tuned end with one factor set to its published value (and to its further values,
GOMAXPROCS=1). Flips from the published end are not measured: they would double the arms of
every comparison, and the question a team asks is what each of the post's choices costs a
tuned service. Factors a profile leaves out are not flipped; the published end sets every
factor all the same (it is the post's configuration, whole).

Each configuration is an instance named `<service>.<tag>` (`python-api-onnx.ort-threads`,
`go-api-onnx.gomaxprocs-1`) with its own environment and telemetry path, so one stack runs
them all side by side under identical limits (helpers.serving.instances).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.load.factors import FACTORS, Factor, applicable, factor
from helpers.serving.instances import Instance, variant
from helpers.sizing import WhySize

TUNED, PUBLISHED = "tuned", "published"


@dataclass(frozen=True)
class Config:
    """An end, or the end with one factor set to another of its values."""

    end: str
    factor: str | None = None
    value: str | None = None

    def value_of(self, name: str) -> str:
        return self.value if name == self.factor and self.value else self.end


@dataclass(frozen=True)
class Configuration:
    """One service in one configuration; `label` is what its comparison calls it: 'tuned',
    'published', the factor's name (flipped to published) or 'factor=value'."""

    service: str
    label: str
    config: Config

    @property
    def tag(self) -> str:
        return self.label.replace("_", "-").replace("=", "-")

    @property
    def name(self) -> str:
        return f"{self.service}.{self.tag}"

    @property
    def factor(self) -> str | None:
        return self.config.factor


def environment(service: str, config: Config, artifacts_dir: Path) -> tuple[dict[str, str], str]:
    """The service's environment for a configuration (every factor that applies to it) and its
    telemetry path ('pull' or 'collector')."""
    env: dict[str, str] = {}
    telemetry = "pull"
    for f in applicable(service):
        setting = f.setting(config.value_of(f.name))
        env |= {k: v.format(artifacts_dir=artifacts_dir) for k, v in setting.env.items()}
        telemetry = setting.telemetry or telemetry
    return env, telemetry


def configurations(
    services: Iterable[str], factors: Iterable[Factor] = FACTORS, extras: bool = True
) -> list[Configuration]:
    """Per service: the tuned end, the published end, then each factor of `factors` that
    applies to it flipped to published (and to its further values when `extras`)."""
    chosen = list(factors)
    made = []
    for service in services:
        made += [
            Configuration(service, TUNED, Config(TUNED)),
            Configuration(service, PUBLISHED, Config(PUBLISHED)),
        ]
        for f in applicable(service, chosen):
            made.append(Configuration(service, f.name, Config(TUNED, f.name, PUBLISHED)))
            for value, _ in f.extras if extras else ():
                made.append(
                    Configuration(service, f"{f.name}={value}", Config(TUNED, f.name, value))
                )
    return made


def instance(configuration: Configuration, artifacts_dir: Path) -> Instance:
    env, telemetry = environment(configuration.service, configuration.config, artifacts_dir)
    return variant(configuration.service, configuration.tag, environment=env, telemetry=telemetry)


def instances(configurations_: Iterable[Configuration], artifacts_dir: Path) -> list[Instance]:
    return [instance(c, Path(artifacts_dir).resolve()) for c in configurations_]


def chosen_factors(size: WhySize) -> list[Factor]:
    """The factors a size flips (helpers.sizing names them; None: every factor)."""
    return [factor(n) for n in size.factors] if size.factors else list(FACTORS)


# -- the rate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    rps: int
    source: str  # where the number comes from, in words
    published_known: bool  # was the published end's capacity among the inputs?

    def record(self) -> dict[str, Any]:
        return {"rps": self.rps, "source": self.source, "published_known": self.published_known}


def _found(record: Mapping[str, Any] | None) -> bool:
    return bool(record) and bool(record.get("rate_rps"))


def _capacity(record: Mapping[str, Any]) -> str:
    bound = record.get("bound", "service")
    lower = "" if bound == "service" else f", a lower bound ({bound})"
    return f"{record['rate_rps']:,} req/s{lower}"


def rate_for(
    published: Mapping[str, Any] | None,
    tuned: Mapping[str, Any] | None,
    from_06: Mapping[str, Any] | None,
    size: WhySize,
    default_rps: int,
) -> Rate:
    """One rate at which every arm of a service's comparison should be servable:
    min(rate_share_of_published × the published end's capacity, rate_share_of_tuned × the
    tuned end's), each a capacity record (`rate_rps`, `display`) of this notebook's search;
    the tuned end's falls back to notebook 06's (the service as served is the tuned end), and
    with neither end known the stated default is used. A capacity that is a lower bound
    (the search's budget ran out) gives a lower rate, never one the end cannot serve."""
    candidates: list[tuple[float, str]] = []
    if _found(published):
        share = size.rate_share_of_published
        candidates.append(
            (
                share * published["rate_rps"],
                f"{share:.0%} of the published end's capacity ({_capacity(published)})",
            )
        )
    tuned_from = "searched here" if _found(tuned) else "notebook 06's"
    tuned = tuned if _found(tuned) else from_06
    if _found(tuned):
        share = size.rate_share_of_tuned
        candidates.append(
            (
                share * tuned["rate_rps"],
                f"{share:.0%} of the tuned end's capacity ({_capacity(tuned)}, {tuned_from})",
            )
        )
    if not candidates:
        return Rate(
            default_rps,
            f"the stated default, {default_rps} req/s: no capacity was found for either end",
            False,
        )
    value, source = min(candidates)
    return Rate(max(1, math.floor(value)), source, _found(published))

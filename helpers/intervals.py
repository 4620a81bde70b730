"""95 % intervals from a run's own samples, and how to say them.

Every headline figure and every effect of the study is an `Estimate`: a value and a 95 %
interval bootstrapped (scipy.stats.bootstrap, BCa) over the units the run repeated —
measurement windows of one step, or rounds of an interleaved comparison. The interval says
how far the figure moved *within this run*; it is never evidence that another run, or another
machine, gives the same figure. One sample has no interval: it is "not repeated".

Resampling whole windows (not requests) keeps what happens inside a window — a CFS period
spent throttled, a garbage collection — together, so the interval reflects the drift the
study cares about. With fewer than `MIN_SAMPLES` units the interval is the samples' range.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000  # enough for a 95 % interval's ends to two digits; ~2 ms per call
MIN_SAMPLES = 3  # below this, BCa has nothing to work with: the range is reported instead
SEED = 20261205  # fixed: re-analysing a run gives the same interval


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval over `samples` repeated units (windows or rounds)."""

    value: float
    low: float
    high: float
    samples: int
    unit: str = "windows"  # what was resampled

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):  # numpy scalars in, plain floats out (JSON)
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def repeated(self) -> bool:
        return self.samples >= 2

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.low, self.high))

    def excludes(self, value: float = 0.0) -> bool:
        """Does the interval leave `value` out? (False when the figure was not repeated.)"""
        return self.repeated and self.finite and not self.low <= value <= self.high

    def half_width(self) -> float:
        """The larger distance from the value to an end of its interval."""
        if not self.finite:
            return math.nan
        return max(self.value - self.low, self.high - self.value)

    def relative_half_width(self) -> float:
        return self.half_width() / abs(self.value) if self.value else math.nan

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (µs from s, say); a negative factor swaps ends."""
        low, high = sorted((self.low * factor, self.high * factor))
        return Estimate(self.value * factor, low, high, self.samples, self.unit)

    def mapped(self, function: Callable[[float], float]) -> Estimate:
        """The estimate through a monotonic function (dollars from a capacity, say)."""
        ends = sorted((function(self.low), function(self.high)))
        return Estimate(function(self.value), ends[0], ends[1], self.samples, self.unit)

    def text(self, number: str = "{:,.0f}", suffix: str = "") -> str:
        """'719 µs (95 %: 690–745, 12 windows)', or '719 µs (not repeated)'."""
        if not math.isfinite(self.value):
            return "n/a"
        shown = number.format(self.value) + suffix
        if not self.repeated:
            return f"{shown} (not repeated)"
        if not self.finite:
            return f"{shown} (no interval)"
        ends = f"{number.format(self.low)}–{number.format(self.high)}"
        if self.samples < MIN_SAMPLES:
            return f"{shown} (range of {self.samples} {self.unit}: {ends})"
        return f"{shown} (95 %: {ends}, {self.samples} {self.unit})"

    def record(self) -> dict[str, Any]:
        """For summary.json: NaN becomes None (JSON has no NaN)."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_record(cls, raw: dict[str, Any] | None) -> Estimate:
        if not raw:
            return NOT_MEASURED
        values = {k: math.nan if raw.get(k) is None else raw[k] for k in ("value", "low", "high")}
        return cls(**values, samples=int(raw.get("samples", 0)), unit=raw.get("unit", "windows"))


NOT_MEASURED = Estimate(math.nan, math.nan, math.nan, 0)


def _finite_columns(arrays: Sequence[Sequence[float]]) -> list[np.ndarray]:
    """Paired samples with every unit that has a non-finite member dropped."""
    columns = [np.asarray(a, dtype=float) for a in arrays]
    keep = np.logical_and.reduce([np.isfinite(c) for c in columns])
    return [c[keep] for c in columns]


def bootstrap(
    arrays: Sequence[Sequence[float]],
    statistic: Callable[..., Any],
    unit: str = "windows",
) -> Estimate:
    """`statistic(*arrays, axis=-1)` with a paired BCa 95 % interval over the units.

    `statistic` must be vectorised (numpy reductions along `axis`). Degenerate samples (all
    equal) get the point as their interval; fewer than MIN_SAMPLES units get their range."""
    columns = _finite_columns(arrays)
    n = len(columns[0]) if columns else 0
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, unit)
    value = float(statistic(*columns, axis=-1))
    if n < MIN_SAMPLES:
        each = [float(statistic(*[c[i : i + 1] for c in columns], axis=-1)) for i in range(n)]
        return Estimate(value, min(*each, value), max(*each, value), n, unit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate data: handled below
        result = stats.bootstrap(
            tuple(columns),
            statistic,
            paired=True,
            vectorized=True,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="BCa",
            rng=SEED,
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value  # every resample gives the same value: no spread to report
    return Estimate(value, min(low, value), max(high, value), n, unit)


def mean(values: Sequence[float], unit: str = "windows") -> Estimate:
    return bootstrap([values], lambda x, axis: np.mean(x, axis=axis), unit)


def median(values: Sequence[float], unit: str = "windows") -> Estimate:
    return bootstrap([values], lambda x, axis: np.median(x, axis=axis), unit)


def ratio_of_sums(
    numerators: Sequence[float], denominators: Sequence[float], unit: str = "windows"
) -> Estimate:
    """sum(numerators) / sum(denominators), e.g. CPU seconds per request over windows."""

    def ratio(num: np.ndarray, den: np.ndarray, axis: int) -> np.ndarray:
        return np.sum(num, axis=axis) / np.sum(den, axis=axis)

    return bootstrap([numerators, denominators], ratio, unit)


def paired_change(
    reference: tuple[Sequence[float], Sequence[float]],
    other: tuple[Sequence[float], Sequence[float]],
    unit: str = "rounds",
) -> Estimate:
    """Relative change of a ratio of sums between two arms measured in the same rounds:
    (Σnum_B/Σden_B) / (Σnum_A/Σden_A) − 1. Resampling rounds keeps each round's pair together,
    so a drift of the machine that hits both arms of a round cancels."""

    def change(na: np.ndarray, da: np.ndarray, nb: np.ndarray, db: np.ndarray, axis: int):
        a = np.sum(na, axis=axis) / np.sum(da, axis=axis)
        b = np.sum(nb, axis=axis) / np.sum(db, axis=axis)
        return b / a - 1.0

    return bootstrap([*reference, *other], change, unit)


def paired_difference(
    reference: Sequence[float], other: Sequence[float], unit: str = "rounds"
) -> Estimate:
    """Mean of (other − reference) over paired units (p95 in ms, say)."""
    return bootstrap([reference, other], lambda a, b, axis: np.mean(b - a, axis=axis), unit)


def ratio_of_independent(
    top: tuple[Sequence[float], Sequence[float]],
    bottom: tuple[Sequence[float], Sequence[float]],
    unit: str = "windows",
) -> Estimate:
    """(Σnum/Σden of `top`) / (Σnum/Σden of `bottom`) for two samples measured apart (a
    service's CPU per request over Go's): each resampled on its own."""
    top_cols, bottom_cols = _finite_columns(top), _finite_columns(bottom)
    n_top, n_bottom = len(top_cols[0]), len(bottom_cols[0])
    if not n_top or not n_bottom:
        return Estimate(math.nan, math.nan, math.nan, 0, unit)
    value = float(
        (top_cols[0].sum() / top_cols[1].sum()) / (bottom_cols[0].sum() / bottom_cols[1].sum())
    )
    samples = min(n_top, n_bottom)
    if samples < MIN_SAMPLES:
        return Estimate(value, value, value, samples, unit)

    def ratio(top_rows: np.ndarray, bottom_rows: np.ndarray, axis: int) -> np.ndarray:
        # The samples resampled are row indices, so each row's numerator and denominator
        # stay together while the two samples are resampled independently.
        t, b = top_rows.astype(int), bottom_rows.astype(int)
        top_ratio = top_cols[0][t].sum(axis=axis) / top_cols[1][t].sum(axis=axis)
        return top_ratio / (bottom_cols[0][b].sum(axis=axis) / bottom_cols[1][b].sum(axis=axis))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            (np.arange(n_top, dtype=float), np.arange(n_bottom, dtype=float)),
            ratio,
            paired=False,
            vectorized=True,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",  # BCa's jackknife needs one sample
            rng=SEED,
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value
    return Estimate(value, min(low, value), max(high, value), samples, unit)

"""The load shapes of `k6/profiles.json`, with the arithmetic the plan and the analysis need.

A run reads its profile from k6/profiles.json once, at its start, and freezes it into the run
folder (`run_dir/k6/profile.json`); k6 gets the frozen copy (env PROFILE_JSON), and the
analysis reads it from there — never the current profiles.json, which may have been edited
since. So "planned" in the report is what k6 was actually told to do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import files, paths

PROFILES_FILE = paths.K6_DIR / "profiles.json"
FROZEN_NAME = "profile.json"  # in run_dir/k6/
MODES = ("coupled", "isolated")
MODE_CHOICES = (*MODES, "both")


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float  # iterations per time unit at the stage's end


@dataclass(frozen=True)
class Profile:
    """One load shape: a ramp of arrival rates, with the arithmetic of its plan."""

    name: str
    time_unit_s: float
    start_rate: float
    stages: tuple[Stage, ...]
    gap_s: float
    request_timeout_s: float
    push_interval_s: float
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, name: str, spec: dict[str, Any]) -> Profile:
        try:
            return cls(
                name=name,
                time_unit_s=_time_unit_seconds(spec["time_unit"]),
                start_rate=float(spec["start_rate"]),
                stages=tuple(
                    Stage(float(s["duration_s"]), float(s["target"])) for s in spec["stages"]
                ),
                gap_s=float(spec["gap_s"]),
                request_timeout_s=float(spec["request_timeout_s"]),
                push_interval_s=float(spec["push_interval_s"]),
                raw=spec,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"profile {name!r} is malformed: {error!r}") from None

    @property
    def phase_s(self) -> float:
        """Length of one ramp (one service in isolated mode, all of them in coupled mode)."""
        return sum(stage.duration_s for stage in self.stages)

    def planned_requests(self) -> int:
        """Requests one service is planned to get in one ramp if k6 keeps up: the area under
        the rate curve, rounded. The one definition of "planned" everywhere in the report."""
        total, rate = 0.0, self.start_rate
        for stage in self.stages:
            total += (rate + stage.target) / 2 * stage.duration_s / self.time_unit_s
            rate = stage.target
        return math.floor(total + 0.5)

    def peak_rate_per_minute(self) -> float:
        return max(self.start_rate, *(s.target for s in self.stages)) * 60 / self.time_unit_s

    def rate_at(self, elapsed_s: float) -> float:
        """Planned iterations per minute `elapsed_s` into the ramp (0 outside it)."""
        if elapsed_s < 0 or elapsed_s > self.phase_s:
            return 0.0
        start, rate = 0.0, self.start_rate
        for stage in self.stages:
            if elapsed_s <= start + stage.duration_s:
                fraction = (elapsed_s - start) / stage.duration_s if stage.duration_s else 1.0
                return (rate + (stage.target - rate) * fraction) * 60 / self.time_unit_s
            start, rate = start + stage.duration_s, stage.target
        return rate * 60 / self.time_unit_s

    def duration_s(self, mode: str, n_services: int) -> float:
        """Planned wall time of one k6 run in `mode` (without start-up and graceful stop)."""
        check_mode(mode, allow_both=False)
        if mode == "coupled":
            return self.phase_s
        return n_services * self.phase_s + (n_services - 1) * self.gap_s

    def service_windows(self, mode: str, services: list[str]) -> dict[str, tuple[float, float]]:
        """Seconds after the k6 run's start during which each service is under load."""
        check_mode(mode, allow_both=False)
        if mode == "coupled":
            return {service: (0.0, self.phase_s) for service in services}
        step = self.phase_s + self.gap_s
        return {s: (i * step, i * step + self.phase_s) for i, s in enumerate(services)}


def _time_unit_seconds(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = text[:-1], text[-1]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"time_unit {text!r}: expected a number and s|m|h, e.g. '1m'")
    return float(number) * units[unit]


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Profile]:
    """Every profile of a profiles file (keys starting with '_' are comments)."""
    data = json.loads(Path(path).read_text())
    return {
        name: Profile.from_json(name, spec)
        for name, spec in data.items()
        if not name.startswith("_")
    }


def get_profile(name: str, path: Path = PROFILES_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValueError(f"profile {name!r} is unknown; expected one of {', '.join(profiles)}")
    return profiles[name]


def freeze(profile: Profile, run_dir: Path) -> Path:
    """Write the profile a run uses into `run_dir/k6/profile.json` (what k6 and analysis read)."""
    path = Path(run_dir) / "k6" / FROZEN_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, {"name": profile.name, "profile": profile.raw})
    return path


def frozen(run_dir: Path) -> Profile:
    """The profile a finished run froze at its start."""
    path = Path(run_dir) / "k6" / FROZEN_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebook 04 (the load test) first")
    data = json.loads(path.read_text())
    return Profile.from_json(data["name"], data["profile"])


def check_mode(mode: str, allow_both: bool = True) -> None:
    choices = MODE_CHOICES if allow_both else MODES
    if mode not in choices:
        raise ValueError(f"mode {mode!r} is unknown; expected one of {', '.join(choices)}")


def modes_for(mode: str) -> list[str]:
    """`both` runs coupled first (the seed's own setup), then isolated."""
    check_mode(mode)
    return list(MODES) if mode == "both" else [mode]

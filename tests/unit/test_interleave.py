"""Paired comparisons on rounds given as data: effects, verdicts, sentences, re-reading a log."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from helpers.load import interleave, windows
from helpers.load.interleave import Arm, Comparison
from helpers.load.windows import Window


def window(label: str, round_: int, cpu_s: float, p95_ms: float = 5.0) -> Window:
    return Window(
        target=f"svc.{label}", label=label, rate=1000, batch=1, round=round_,
        started_at=float(round_), ended_at=round_ + 1.0, planned_s=1.0, requests=1000, ok=1000,
        p50_ms=p95_ms / 2, p95_ms=p95_ms, p99_ms=p95_ms * 2, max_ms=p95_ms * 3, cpu_s=cpu_s,
        periods=10, throttled=0, working_set_bytes=60e6, oom_kills=0, generator_cpu_s=0.1,
        cpu_counter_at_start=100.0 * round_, cpu_with_tail_s=cpu_s * 1.02,
    )  # fmt: skip


def comparison(rounds: int, costs: dict[str, float], seed: int = 1) -> Comparison:
    """Every round drifts ±25 % for all arms alike; each arm costs its share of the reference."""
    rng = np.random.default_rng(seed)
    arms = [Arm(f"svc.{label}", label) for label in costs]
    made = Comparison("svc", arms, rate=1000)
    for r in range(rounds):
        drift = 1 + rng.uniform(-0.25, 0.25)
        made.rounds.append(
            {
                label: window(label, r, 0.4 * share * drift * rng.normal(1, 0.01))
                for label, share in costs.items()
            }
        )
    return made


def test_an_effect_is_found_through_drift_and_a_null_is_bounded():
    made = comparison(8, {"tuned": 1.0, "access_log": 1.12, "zipmap": 1.0})
    assert made.verdict("access_log", 0.05) == "effect"
    assert "95 %" in made.sentence("access_log", 0.05)
    assert made.verdict("zipmap", 0.05) == "none"
    assert made.sentence("zipmap", 0.05).startswith("no effect larger than ±")
    assert made.all_settled(0.05)


def test_a_comparison_is_not_settled_before_three_rounds():
    made = comparison(2, {"tuned": 1.0, "spans": 1.5})
    assert not made.settled("spans", 0.05)
    assert made.change("spans").samples == 2


def test_a_round_whose_tail_is_still_open_does_not_count():
    made = comparison(4, {"tuned": 1.0, "spans": 1.3})
    made.rounds[-1]["spans"] = replace(made.rounds[-1]["spans"], cpu_with_tail_s=float("nan"))
    assert len(made.complete_rounds()) == 3


def test_a_multiple_of_the_floor_is_paired_within_rounds():
    made = comparison(8, {"full": 3.0, "noop": 1.0})
    multiple = made.multiple("full", "noop")
    assert multiple.low < 3.0 < multiple.high
    assert multiple.high - multiple.low < 0.2  # drift cancels within rounds


def test_rotation_moves_every_arm_through_every_position():
    arms = [Arm(f"t{i}", f"a{i}") for i in range(3)]
    firsts = {interleave.rotated(arms, r)[0].label for r in range(3)}
    assert firsts == {"a0", "a1", "a2"}


def test_a_logged_comparison_is_re_made_with_the_same_effects(tmp_path):
    made = comparison(6, {"tuned": 1.0, "access_log": 1.1})
    log = windows.WindowLog(tmp_path / "windows.jsonl")
    for taken in made.rounds:
        for w in taken.values():
            log.append(w, comparison="svc")
    with log.path.open("a") as sink:
        sink.write('{"truncated": ')  # a run killed mid-write
    again = interleave.from_log(log.read(), Comparison("svc", made.arms, rate=1000))
    assert again.change("access_log") == made.change("access_log")

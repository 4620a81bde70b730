"""The why's table, sentences and observations (helpers.analysis.why, why_sentences,
observations, memory_observations) on paired comparisons whose rounds are given as data.

Every word is computed: the tests change a number and check that the words follow it.
"""

from __future__ import annotations

import math
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from helpers.analysis import memory_observations, observations, why, why_plots, why_sentences
from helpers.load import ablation_plan, factors
from helpers.load.interleave import Arm, Comparison
from helpers.load.windows import Window
from helpers.prometheus import queries

matplotlib.use("Agg")

MIB = 1024 * 1024
MIN_EFFECT = 0.05


def window(service, label, round_, cpu_s, p99_ms=4.0, ws=60 * MIB, throttled=0, p95_ms=2.0):
    return Window(
        target=f"{service}.{label}", label=label, rate=500, batch=1, round=round_,
        started_at=float(round_), ended_at=round_ + 1.0, planned_s=1.0, requests=500, ok=500,
        p50_ms=1.0, p95_ms=p95_ms, p99_ms=p99_ms, max_ms=p99_ms * 2, cpu_s=cpu_s, periods=10,
        throttled=throttled, working_set_bytes=ws, oom_kills=0, generator_cpu_s=0.05,
        cpu_counter_at_start=100.0 * round_, cpu_with_tail_s=cpu_s,
    )  # fmt: skip


def comparison(service, arms, rounds=8, seed=3, rate=500):
    """`arms`: label → (CPU share of the tuned end, p99 ms, working set MiB, throttled periods,
    p95 ms); every round drifts ±25 % for all arms alike, each window ±1 % on its own."""
    rng = np.random.default_rng(seed)
    made = Comparison(service, [Arm(f"{service}.{label}", label) for label in arms], rate)
    for r in range(rounds):
        drift = 1 + rng.uniform(-0.25, 0.25)
        made.rounds.append(
            {
                label: window(service, label, r, 0.2 * share * drift * rng.normal(1, 0.01),
                              p99 + rng.normal(0, 0.05), ws * MIB, throttled, p95)
                for label, (share, p99, ws, throttled, p95) in arms.items()
            }
        )  # fmt: skip
    return made


BASE = (1.0, 4.0, 60, 0, 2.0)
PKL = comparison("python-api-pkl", {
    "tuned": BASE, "published": (1.6, 9.0, 70, 0, 3.0), "access_log": (1.15, 4.0, 60, 0, 2.0),
    "traces": (1.0, 4.0, 60, 0, 2.0),
})  # fmt: skip
GO = comparison("go-api-onnx", {
    "tuned": BASE, "published": (2.2, 30.0, 64, 4, 40.0), "traces": (1.5, 6.0, 62, 0, 2.0),
    "gomaxprocs=1": (0.98, 4.0, 60, 2, 2.0),
}, seed=5)  # fmt: skip
SHORT = comparison("python-api-onnx", {
    "tuned": BASE, "published": (1.3, 4.0, 60, 0, 2.0), "traces": (1.1, 4.0, 60, 0, 2.0)
}, rounds=2)  # fmt: skip
COMPARISONS = [PKL, SHORT, GO]
PLAN = [
    c
    for c in ablation_plan.configurations(
        factors.SERVICE_NAMES, [factors.factor(n) for n in ("access_log", "traces", "gomaxprocs")]
    )
]
SKIPPED = [
    {"service": "go-api-onnx", "label": "access_log", "reason": "access_log=published is not "
     "honoured: it writes no line per request"},
    {"service": "python-api-onnx", "label": "access_log", "reason": "not honoured: silent"},
]  # fmt: skip


def cells():
    return why.effects(COMPARISONS, PLAN, SKIPPED, MIN_EFFECT)


def cell(found, service, label):
    (hit,) = [c for c in found if c.service == service and c.label == label]
    return hit


def test_every_cell_is_an_effect_a_bound_undecided_not_measured_or_not_applicable():
    found = cells()
    access = cell(found, "python-api-pkl", "access_log")
    assert access.state == "effect" and access.cpu_change.value == pytest.approx(0.15, abs=0.01)
    assert re.fullmatch(r"\+15% \(95 %: \+1\d% to \+1\d%\)", access.text), access.text
    assert cell(found, "python-api-pkl", "traces").state == "none"
    assert cell(found, "python-api-pkl", "traces").text.startswith("no effect larger than ±")
    short = cell(found, "python-api-onnx", "traces")
    assert short.state == "undecided" and short.rounds == 2
    assert re.fullmatch(r"undecided \(budget spent\): \+1\d% \(range of 2 rounds: .+\)", short.text)
    skipped = cell(found, "go-api-onnx", "access_log")
    assert skipped.state == "not measured"
    assert skipped.text == "not measured: " + SKIPPED[0]["reason"]
    assert cell(found, "python-api-pkl", "gomaxprocs").text == why.NOT_APPLICABLE
    small = cell(found, "go-api-onnx", "gomaxprocs=1")  # -2 %: settled, smaller than it matters
    assert small.state == "effect" and not small.matters(MIN_EFFECT)
    table = why.factor_table(found)
    assert list(table.index) == ["access_log", "traces", "gomaxprocs", "gomaxprocs=1"]
    assert list(table.columns) == list(factors.SERVICE_NAMES)
    assert table.loc["access_log", "python-api-pkl"] == access.text


def test_a_sentence_only_for_a_factor_that_matters_and_its_numbers_follow():
    found = cells()
    traces = why_sentences.factor_sentence(factors.factor("traces"), found, MIN_EFFECT)
    assert traces.startswith("**traces**, a span per request")
    assert re.search(r"spans via OTLP \(BatchSpanProcessor, 3 s\) instead of no spans: "
                     r"go-api-onnx \+5\d% \(95 %: \+\d\d% to \+\d\d%\) CPU per request, "
                     r"client p99 \+[12]\.\d\d ms \(95 %:", traces), traces  # fmt: skip
    assert "python-api" not in traces  # no effect there, or undecided: the table says so
    small = why.effects(COMPARISONS, PLAN, SKIPPED, min_effect=0.2)
    assert why_sentences.factor_sentence(factors.factor("access_log"), small, 0.2) is None
    assert "python-api-pkl +15%" in why_sentences.factor_sentence(
        factors.factor("access_log"), found, MIN_EFFECT
    )
    assert why_sentences.factor_sentence(factors.factor("gomaxprocs"), found, MIN_EFFECT) is None


def test_the_quota_figures_are_paired_differences_in_their_units():
    go = cell(cells(), "go-api-onnx", "gomaxprocs=1")
    throttled = go.figures["throttled_ratio"]
    assert throttled.value == pytest.approx(0.2) and throttled.excludes(0)
    assert why.difference_text(throttled, why.FIGURES["throttled_ratio"]).startswith("+20 (")
    phrase = why_sentences.figure_phrase("throttled_ratio", throttled)
    assert phrase.startswith("throttled periods +20 pp (95 %:")
    assert why_sentences.figure_phrase("p99_ms", go.figures["p99_ms"]) == ""  # includes zero


def test_the_ends_pair_published_with_tuned_and_carry_both_capacities():
    capacities = {
        "tuned": {"go-api-onnx": {"rate_rps": 3000, "display": "3,000", "bound": "service",
                                  "interval": {"value": 3000, "low": 2800, "high": 3300,
                                               "samples": 9, "unit": "steps"}}},
        "published": {"go-api-onnx": {"rate_rps": 900, "display": "≥ 900 (time budget-bound)",
                                      "bound": "time budget",
                                      "interval": {"value": 900, "low": 800, "high": None,
                                                   "samples": 3, "unit": "steps"}}},
    }  # fmt: skip
    said = {"go-api-onnx.published": {"checked": {"traces": None, "gomaxprocs": "not 8"}}}
    found = why.ends(COMPARISONS, capacities, said, MIN_EFFECT)
    go = found["go-api-onnx"]
    assert go["effect"]["state"] == "effect"
    assert go["effect"]["cpu_change"]["value"] == pytest.approx(1.2, abs=0.03)
    assert go["published_not_honoured"] == {"gomaxprocs": "not 8"}
    assert go["misses"]["tuned"] == [] and go["misses"]["published"][0].startswith("p95 40.0 ms")
    assert found["python-api-pkl"]["capacity"] == {"tuned": None, "published": None}
    table = why.ends_table(found)
    assert table.loc["go-api-onnx", "tuned capacity [req/s]"] == "3,000 (95 %: 2,800–3,300)"
    assert table.loc["go-api-onnx", "published capacity [req/s]"].startswith("≥ 900")
    assert table.loc["go-api-onnx", "published ignores"] == "gomaxprocs"
    assert table.loc["python-api-pkl", "tuned capacity [req/s]"] == "not searched"
    said_ends = why_sentences.ends_sentence(found)
    assert (
        "go-api-onnx at 500 req/s, CPU per request +120% (95 %:" in said_ends
        and ", capacity tuned 3,000 (95 %: 2,800–3,300) req/s, published ≥ 900" in said_ends
    )
    assert "its published end ignoring gomaxprocs." in said_ends


def test_records_keep_every_arm_figure_and_the_section_keeps_the_cells():
    record = why.comparison_record(GO, MIN_EFFECT)
    arm = record["arms"]["published"]
    assert arm["p99_ms_change"]["value"] == pytest.approx(26.0, abs=0.1)
    assert arm["working_set_bytes"] == pytest.approx(64 * MIB)
    assert arm["misses"] and record["arms"]["tuned"]["misses"] == []
    assert "p99_ms_change" not in record["arms"]["tuned"]
    found = cells()
    section = why.section({"size": {"capacity_s": 0}, "skipped": SKIPPED}, found, {}, {"a": "b"},
                          {"profile": "smoke"})  # fmt: skip
    assert section["size"] == {"capacity_s": 0} and section["skipped"] == SKIPPED
    assert len(section["effects"]) == len(found)
    states = {(e["service"], e["label"]): e["state"] for e in section["effects"]}
    assert states[("go-api-onnx", "access_log")] == "not measured"
    assert section["sentences"] == {"a": "b"}


def test_gomaxprocs_preface_says_when_published_and_tuned_are_the_same_setting():
    def record(label, end, factor, value, logged, cpus=2):
        return {"service": "go-api-onnx", "label": label, "end": end, "factor": factor,
                "value": value, "gomaxprocs": logged, "num_cpu": cpus}  # fmt: skip

    said = {
        "t": record("tuned", "tuned", None, None, 2),
        "p": record("published", "published", None, None, 2),
        "g": record("gomaxprocs", "tuned", "gomaxprocs", "published", 2),
        "1": record("gomaxprocs=1", "tuned", "gomaxprocs", "1", 1),
        "a": record("access_log", "tuned", "access_log", "published", 2),
    }
    text = why_sentences.gomaxprocs_preface(said)
    assert "tuned: 2, published: 2, 1: 1" in text and "A/A" in text
    said["p"] = record("published", "published", None, None, 8, 8)
    said["g"] = record("gomaxprocs", "tuned", "gomaxprocs", "published", 8, 8)
    differs = why_sentences.gomaxprocs_preface(said)
    assert "published: 8" in differs and "differ here" in differs and "A/A" not in differs
    assert "no GOMAXPROCS" in why_sentences.gomaxprocs_preface({})


def rpm_series(served_factor: float) -> pd.DataFrame:
    times = range(0, 60, 5)
    planned = [{"service": "svc", "metric": "planned_requests_per_minute", "elapsed_s": t + 0.0004,
                "value": 600.0} for t in times]  # fmt: skip
    served = [{"service": "svc", "metric": "server_requests_per_minute", "elapsed_s": float(t),
               "value": 600.0 * (served_factor if t >= 40 else 1.0)} for t in times]  # fmt: skip
    return pd.DataFrame(planned + served)


def test_shortfall_and_the_rpm_verdict():
    assert observations.shortfall(rpm_series(1.0), 10)["svc"] == pytest.approx(0.0)
    assert observations.shortfall(rpm_series(0.6), 10)["svc"] == pytest.approx(0.4)
    trickle = rpm_series(0.9)
    trickle["value"] /= 6  # 100/min: a 10 s window holds ~17 requests, too few to judge
    assert math.isnan(observations.shortfall(trickle, 10)["svc"])
    table = pd.DataFrame(
        {"requests": [990], "planned_requests": [1000], "reached_ratio": [0.99]},
        index=pd.Index(["svc"], name="service"),
    )
    capacities = {
        "published": {"svc": {"rate_rps": 200, "display": "200", "bound": "service"}},
        "tuned": {"svc": {"rate_rps": 800, "display": "≥ 800", "bound": "generator"}},
    }
    at_rate = observations.ends_at(COMPARISONS)
    assert at_rate["tuned"]["go-api-onnx"]["passed"] is True
    assert at_rate["published"]["go-api-onnx"]["passed"] is False
    assert at_rate["published"]["go-api-onnx"]["p95_ms"] == pytest.approx(40.0)
    numbers, said = observations.rpm_observation(
        {"coupled": table}, {"coupled": {"svc": 0.4}}, capacities, 267, at_rate
    )
    assert numbers["modes"]["coupled"]["svc"]["fell_behind"] is True
    assert "svc fell behind" in said
    assert "published configuration against the seed's peak (267 req/s): svc 200 req/s (falls " \
        "behind)" in said  # fmt: skip
    assert "svc ≥ 800 req/s (keeps up)" in said
    assert ("the published configuration held the objective for python-api-pkl (500 req/s) and "
            "python-api-onnx (500 req/s); not for go-api-onnx (500 req/s: p95 40.0 ms, errors "
            "0.00 %)") in said  # fmt: skip
    _, fine = observations.rpm_observation({"coupled": table}, {"coupled": {"svc": 0.05}}, {}, 267)
    assert "no service fell behind" in fine
    short = {"published": {"svc": {"rate_rps": 200, "display": "≥ 200", "bound": "time budget"}}}
    numbers, stopped = observations.rpm_observation({}, {}, short, 267)
    assert "svc ≥ 200 req/s (undecided: the search ran out of its time budget)" in stopped
    assert numbers["capacity_vs_seed_peak"]["published"]["svc"]["keeps_up_at_seed_peak"] is None


def test_memory_figures_tell_page_cache_from_the_working_set():
    frame = pd.DataFrame(
        [{"service": "pkl", "metric": "memory_usage_bytes", "elapsed_s": t, "value": v * MIB}
         for t, v in [(0, 100), (1, 120), (2, 118)]]
        + [{"service": "pkl", "metric": "memory_working_set_bytes", "elapsed_s": t,
            "value": v * MIB} for t, v in [(0, 90), (1, 96), (2, 95)]]
    )  # fmt: skip
    figures = memory_observations.memory_figures(frame, 128 * MIB)
    pkl = figures.loc["pkl"]
    assert pkl.peak_usage_mib == 120 and pkl.peak_working_set_mib == 96
    assert pkl.page_cache_share_at_peak == pytest.approx(0.2)
    assert pkl.time_usage_above_90 == pytest.approx(2 / 3) and pkl.time_working_set_above_90 == 0
    said = memory_observations.memory_sentence(figures, "coupled", 128 * MIB)
    assert "usage peaked at 120 MiB (94 % of 128 MiB), its working set at 96 MiB (75 %)" in said
    assert "page cache was 20 % of the usage at its peak" in said


def test_memory_in_the_comparisons_names_each_end_and_the_largest_paired_move():
    numbers, said = memory_observations.memory_in_comparisons(COMPARISONS, 128 * MIB)
    pkl = numbers["python-api-pkl"]
    assert pkl["published"]["working_set_of_limit"] == pytest.approx(70 / 128)
    assert pkl["largest_move"]["arm"] == "published"
    assert "python-api-pkl working set tuned 60 MiB, 47 % of the limit (95 %:" in said
    assert "published 70 MiB, 55 % of the limit" in said
    assert "the largest move: published, +10.0 MiB (95 %: +10.0 to +10.0)" in said
    assert "limit 128 MiB" in said
    assert memory_observations.memory_in_comparisons([], None)[1].startswith("The comparisons")


def test_p95_three_ways_and_what_the_first_bucket_hides():
    series = pd.DataFrame(
        [{"service": s, "metric": "server_latency_p95_seconds_seed_buckets", "elapsed_s": t,
          "value": v} for s, values in {"onnx": [0.0047, 0.0047], "go": [0.0047, 0.006]}.items()
         for t, v in enumerate(values)]
    )  # fmt: skip
    figures = observations.p95_figures(
        {"onnx": 0.00475, "go": 0.00474}, {"onnx": 0.0021, "go": 0.0009},
        {"onnx": 3.0, "go": 1.0}, series,
    )  # fmt: skip
    assert figures.loc["go", "points_inside_first_bucket"] == 0.5
    said = observations.p95_sentence(figures, "coupled")
    assert "onnx 4.75 / 2.10 / 3.00 ms (100 % of the 5 s points inside the first bucket)" in said
    assert (
        "onnx and go all read below 5 ms in the post's layout, 4.74–4.75 ms (1.00× apart)" in said
    )
    assert "k6 measured 1.00–3.00 ms (3.00× apart)" in said


def test_coupling_says_what_the_loop_makes_equal():
    def table(requests, p95):
        return pd.DataFrame(
            {"requests": requests, "client_p95_ms": p95, "server_p95_ms": [1, 1],
             "mean_cpu_cores": [0.2, 0.1], "throttled_ratio": [0, 0]},
            index=pd.Index(["pkl", "go"], name="service"),
        )  # fmt: skip

    numbers, said = observations.coupling_sentence(
        {"coupled": table([500, 500], [6.0, 2.0]), "isolated": table([500, 500], [4.0, 2.0])}
    )
    assert "pkl 500, go 500 requests — all equal" in said and "cannot rank them" in said
    assert "pkl 6.00 vs 4.00 ms (1.50×)" in said
    assert numbers["pkl"]["client_p95_ms"] == {"coupled": 6.0, "isolated": 4.0}
    _, apart = observations.coupling_sentence(
        {"coupled": table([500, 450], [6.0, 2.0]), "isolated": table([500, 500], [4.0, 2.0])}
    )
    assert "10.0 % apart" in apart
    assert (
        "Both modes are needed"
        in observations.coupling_sentence({"coupled": table([1, 1], [1, 1])})[1]
    )


def test_the_post_bucket_query_selects_exactly_the_shared_boundaries():
    assert queries.SEED_BUCKETS_MISSING_S == (0.75, 7.5)
    promql = queries.render("server_latency_p95_seconds_seed_buckets", services="a", window="5s")
    pattern = re.search(r'le=~"([^"]+)"', promql).group(1).replace("\\\\", "\\")
    for kept in ("0.005", "0.01", "0.025", "0.075", "1", "1.0", "5.0", "10.0", "+Inf"):
        assert re.fullmatch(pattern, kept), kept
    for dropped in ("0.0005", "0.002", "0.0075", "0.015", "0.04", "0.5x"):
        assert not re.fullmatch(pattern, dropped), dropped


def test_the_charts_have_titles_and_labelled_axes():
    found = cells()
    figure = why_plots.effects_chart(found, "CPU")
    ax = figure.axes[0]
    assert ax.get_title() == "CPU" and "[%]" in ax.get_ylabel() and ax.get_xlabel()
    bars = [p for p in ax.patches if p.get_height() != 0]
    assert len(bars) == 5  # measured cells only: not measured and not applicable have none
    p99 = why_plots.effects_chart(found, "p99", "p99_ms")
    assert "[ms]" in p99.axes[0].get_ylabel()
    capacity = why_plots.end_capacities({"tuned": {"pkl": {"rate_rps": 300, "display": "300",
                                                           "bound": "service"}}}, 267)  # fmt: skip
    assert "[req/s]" in capacity.axes[0].get_ylabel() and capacity.axes[0].get_title()

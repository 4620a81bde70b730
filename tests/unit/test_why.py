"""Effect sizes and the sentences of notebook 07 (helpers.analysis.why), on given numbers.

Every sentence is computed: the tests change a number and check that the words follow it.
"""

from __future__ import annotations

import math
import re

import matplotlib
import pandas as pd
import pytest

from helpers.analysis import memory_observations, observations, why, why_plots, why_sentences
from helpers.prometheus import queries

matplotlib.use("Agg")

MIB = 1024 * 1024


def row(service, end, factor, value, cpu, p99, repeat=0, rate=267, label="seed peak", **extra):
    return {
        "service": service, "end": end, "factor": factor, "value": value, "rate": rate,
        "rate_label": label, "repeat": repeat, "service_cpu_us_per_request": cpu,
        "p95_ms": p99 / 2, "p99_ms": p99, "server_p95_ms": p99 / 4, "server_p99_ms": p99 / 3,
        "memory_working_set_peak_bytes": extra.pop("ws", 100 * MIB),
        "memory_usage_peak_bytes": extra.pop("usage", 110 * MIB),
        "throttled_ratio": extra.pop("throttled", 0.0), "error_rate": 0.0,
        "passed": extra.pop("passed", True), **extra,
    }  # fmt: skip


def repeated(service, end, factor, value, cpus, p99s, **extra):
    return [
        row(service, end, factor, value, c, p, repeat=i, **extra)
        for i, (c, p) in enumerate(zip(cpus, p99s, strict=True))
    ]


ROWS = pd.DataFrame(
    repeated("python-api-pkl", "tuned", None, None, [1000, 1020, 990], [5.0, 5.2, 4.9])
    + repeated("python-api-pkl", "tuned", "access_log", "published", [1150, 1160, 1140],
               [5.1, 5.0, 5.2])
    + repeated("go-api-onnx", "tuned", None, None, [300, 310, 290], [2.0, 2.1, 1.9])
    + repeated("go-api-onnx", "tuned", "gomaxprocs", "1", [305, 300, 295], [3.0, 3.2, 3.1],
               throttled=0.2)
)  # fmt: skip


def effect(frame, service, factor, metric):
    hit = frame[(frame.service == service) & (frame.factor == factor) & (frame.metric == metric)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def test_effects_are_flip_minus_end_of_the_medians_with_the_spread_verdict():
    effects = why.effects(ROWS)
    cpu = effect(effects, "python-api-pkl", "access_log", "service_cpu_us_per_request")
    assert (cpu.base, cpu.flipped, cpu.change) == (1000, 1150, 150)
    assert cpu.relative == pytest.approx(0.15)
    assert cpu.spread == 30  # the end's: 1020 - 990 (the flip's is 20)
    assert cpu.within_spread is not None and not cpu.within_spread
    p99 = effect(effects, "python-api-pkl", "access_log", "p99_ms")
    assert p99.change == pytest.approx(0.1) and bool(p99.within_spread) is True
    go = effect(effects, "go-api-onnx", "gomaxprocs", "throttled_ratio")
    assert go.change == pytest.approx(0.2) and math.isnan(go.relative)  # from 0: no ratio
    assert set(effects.repeats) == {3}


def test_one_repeat_leaves_the_spread_unknown_and_the_sentence_says_so():
    single = pd.DataFrame(
        [row("go-api-onnx", "tuned", None, None, 300, 2.0),
         row("go-api-onnx", "tuned", "traces", "published", 360, 2.5)]
    )  # fmt: skip
    effects = why.effects(single)
    assert effects.within_spread.isna().all() and effects.spread.isna().all()
    said = why_sentences.factor_sentence(
        "traces", "spans", {"published": "on", "tuned": "off"}, effects
    )
    assert "One repeat: the spread over repeats is unknown." in said
    assert "go-api-onnx CPU per request +60 µs (+20 %)" in said


def test_the_factor_sentence_follows_the_numbers_and_names_what_was_not_measured():
    effects = why.effects(ROWS)
    skipped = [{"service": "go-api-onnx", "factor": "access_log", "end": "tuned",
                "value": "published", "reason": "it writes no line per request"}]  # fmt: skip
    said = why_sentences.factor_sentence(
        "access_log", "a log line per request", {"published": "on", "tuned": "off"}, effects,
        skipped,
    )  # fmt: skip
    assert said.startswith("**access_log** (a log line per request; published: on, tuned: off).")
    assert "From the tuned end at the seed's peak (267 req/s), on instead:" in said
    assert "python-api-pkl CPU per request +150 µs (+15 %)" in said
    assert "client p99 +0.10 ms (+2 %, within the spread)" in said
    assert "Not measured: go-api-onnx (it writes no line per request)." in said
    assert "One repeat" not in said
    cheaper = ROWS.copy()
    cheaper.loc[cheaper.factor == "access_log", "service_cpu_us_per_request"] -= 300
    again = why_sentences.factor_sentence("access_log", "x", {"published": "on", "tuned": "off"},
                                why.effects(cheaper))  # fmt: skip
    assert "CPU per request -150 µs (-15 %)" in again


def test_quota_factors_name_the_throttled_share_and_large_changes_read_as_factors():
    effects = why.effects(ROWS)
    said = why_sentences.factor_sentence(
        "gomaxprocs", "GOMAXPROCS", {"published": "host", "tuned": "default", "1": "GOMAXPROCS=1"},
        effects,
    )  # fmt: skip
    assert "GOMAXPROCS=1 instead" in said
    assert "throttled periods +20 pp (from 0 %)" in said
    assert "client p99 +1.10 ms (+55 %)" in said
    assert why_sentences.change_phrase(
        {"metric": "p99_ms", "change": 45.0, "relative": 9.0, "base": 5.0, "within_spread": None}
    ) == "client p99 +45.00 ms (×10)"  # fmt: skip


def test_effect_table_marks_changes_within_the_spread():
    table = why.effect_table(why.effects(ROWS), ["service_cpu_us_per_request", "p99_ms"])
    pkl = table.xs("python-api-pkl", level="service").iloc[0]
    assert pkl["CPU per request [µs]"] == "+150" and pkl["CPU per request [%]"] == "+15"
    assert pkl["client p99 [ms]"] == "~+0.10"


def test_gomaxprocs_preface_says_when_published_and_tuned_are_the_same_setting():
    started = [
        {"service": "go-api-onnx", "end": "tuned", "factor": None, "value": None,
         "gomaxprocs": 2, "num_cpu": 2},
        {"service": "go-api-onnx", "end": "tuned", "factor": "gomaxprocs", "value": "published",
         "gomaxprocs": 2, "num_cpu": 2},
        {"service": "go-api-onnx", "end": "tuned", "factor": "gomaxprocs", "value": "1",
         "gomaxprocs": 1, "num_cpu": 2},
    ]  # fmt: skip
    said = why_sentences.gomaxprocs_preface(started)
    assert "tuned: 2, published: 2, 1: 1" in said
    assert "the same setting here (GOMAXPROCS 2 either way" in said and "A/A" in said
    started[1]["gomaxprocs"] = started[1]["num_cpu"] = 8
    differs = why_sentences.gomaxprocs_preface(started)
    assert "published: 8" in differs and "differ here" in differs and "A/A" not in differs
    assert "no GOMAXPROCS" in why_sentences.gomaxprocs_preface([])


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
    at_seed = {"published": {"svc": {"passed": False, "p95_ms": 120.0, "error_rate": 0.02}}}
    numbers, said = observations.rpm_observation(
        {"coupled": table}, {"coupled": {"svc": 0.4}}, capacities, 267, at_seed
    )  # fmt: skip
    assert numbers["modes"]["coupled"]["svc"]["fell_behind"] is True
    assert "svc fell behind" in said
    assert (
        "published configuration against the seed's peak (267 req/s): svc 200 req/s (falls behind)"
        in said
    )
    assert "svc ≥ 800 req/s (keeps up)" in said
    assert "held the objective for no service; not for svc (p95 120.0 ms, errors 2.00 %)" in said
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


def test_ends_at_the_seed_peak_and_memory_in_the_ablation():
    rows = pd.DataFrame(
        repeated("pkl", "published", None, None, [2000, 2100], [900, 950], passed=False,
                 ws=120 * MIB)
        + repeated("pkl", "tuned", None, None, [1000, 1000], [5, 5], ws=100 * MIB)
        + repeated("pkl", "tuned", "traces", "published", [1700, 1700], [50, 50], ws=112 * MIB)
    )  # fmt: skip
    verdicts = observations.ends_at(rows, "seed peak")
    assert verdicts["published"]["pkl"]["passed"] is False
    assert verdicts["tuned"]["pkl"]["passed"] is True
    medians = why.medians(rows)
    numbers, said = memory_observations.memory_in_ablation(medians, why.effects(rows), 128 * MIB)
    assert numbers["pkl"]["published"]["working_set_of_limit"] == pytest.approx(120 / 128)
    assert "pkl peak working set published 120 MiB (94 %), tuned 100 MiB (78 %)" in said
    assert "the largest move: traces=published from the tuned end, +12.0 MiB" in said


def test_the_summary_section_holds_effects_ends_and_what_was_not_measured():
    effects = why.effects(ROWS)
    section = why.section(
        effects, why.medians(ROWS),
        [{"service": "go-api-onnx", "factor": "traces", "end": "tuned", "value": "published",
          "reason": "silent"}],
        {"tuned": {"go-api-onnx": {"rate_rps": 900}}}, {"go-api-onnx": []}, {"repeats": 3},
        {"access_log": "…"}, {"rpm": {}},
        [{"service": "go-api-onnx", "end": "tuned", "factor": None, "not_honoured": {},
          "gomaxprocs": 2}],
    )  # fmt: skip
    pkl = section["services"]["python-api-pkl"]
    cpu = pkl["factors"]["access_log"]["tuned"]["published"]["seed peak"]
    assert cpu["service_cpu_us_per_request"]["change"] == 150
    assert pkl["ends"]["tuned"]["rates"]["seed peak"]["service_cpu_us_per_request"] == 1000
    go = section["services"]["go-api-onnx"]
    assert go["factors"]["traces"]["tuned"]["published"] == {"not_measured": "silent"}
    assert go["ends"]["tuned"]["capacity"] == {"rate_rps": 900}
    assert go["ends"]["tuned"]["gomaxprocs"] == 2
    assert section["sentences"] == {"access_log": "…"}


def test_the_post_bucket_query_selects_exactly_the_shared_boundaries():
    assert queries.SEED_BUCKETS_MISSING_S == (0.75, 7.5)
    promql = queries.render("server_latency_p95_seconds_seed_buckets", services="a", window="5s")
    pattern = re.search(r'le=~"([^"]+)"', promql).group(1).replace("\\\\", "\\")
    for kept in ("0.005", "0.01", "0.025", "0.075", "1", "1.0", "5.0", "10.0", "+Inf"):
        assert re.fullmatch(pattern, kept), kept
    for dropped in ("0.0005", "0.002", "0.0075", "0.015", "0.04", "0.5x"):
        assert not re.fullmatch(pattern, dropped), dropped
    assert "0.99" in queries.render("server_latency_p99_seconds", table="totals", services="a",
                                    range="9s")  # fmt: skip


def test_the_charts_have_titles_and_labelled_axes():
    effects = why.effects(ROWS)
    figure = why_plots.effects_chart(effects, "service_cpu_us_per_request", "CPU")
    ax = figure.axes[0]
    assert figure._suptitle.get_text() == "CPU"
    assert "[%]" in ax.get_ylabel() and ax.get_xlabel()
    capacity = why_plots.end_capacities({"tuned": {"pkl": {"rate_rps": 300, "display": "300",
                                                           "bound": "service"}}}, 267)  # fmt: skip
    assert "[req/s]" in capacity.axes[0].get_ylabel() and capacity.axes[0].get_title()

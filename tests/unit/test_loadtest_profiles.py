"""The load plan (k6/profiles.json) as helpers.load.profiles reads it, and k6 summary parsing."""

from __future__ import annotations

import itertools

import pytest

from helpers.load import loadtest, profiles


def test_seed_profile_is_the_original_shape():
    seed = profiles.get_profile("seed")
    assert seed.time_unit_s == 60
    assert seed.start_rate == 100  # the prose: 2 minutes AT 100, not a ramp from 0
    assert [(s.duration_s, s.target) for s in seed.stages] == [
        (120, 100),
        (120, 4000),
        (120, 8000),
        (120, 16000),
    ]
    # 2 min x 100 + three linear ramps of 2 min each.
    assert seed.planned_requests() == 200 + 4100 + 12000 + 24000


def test_quick_is_the_seed_in_an_eighth_of_the_time():
    seed, quick = profiles.get_profile("seed"), profiles.get_profile("quick")
    assert quick.phase_s == seed.phase_s / 8
    assert [s.target for s in quick.stages] == [s.target for s in seed.stages]
    assert quick.planned_requests() == round(seed.planned_requests() / 8)


def test_smoke_is_short_and_gentle():
    smoke = profiles.get_profile("smoke")
    assert smoke.phase_s <= 30
    assert smoke.peak_rate_per_minute() <= 1200


def test_isolated_windows_do_not_overlap():
    quick = profiles.get_profile("quick")
    windows = quick.service_windows("isolated", ["a", "b", "c"])
    ordered = sorted(windows.values())
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(ordered))
    assert quick.duration_s("isolated", 3) == ordered[-1][1]


def test_rate_at_follows_the_stages():
    seed = profiles.get_profile("seed")
    assert seed.rate_at(60) == pytest.approx(100)
    assert seed.rate_at(180) == pytest.approx((100 + 4000) / 2)
    assert seed.rate_at(480) == pytest.approx(16000)
    assert seed.rate_at(481) == 0


@pytest.mark.parametrize("bad", ["both", "Coupled", ""])
def test_phase_modes_are_validated(bad):
    with pytest.raises(ValueError, match="mode"):
        profiles.get_profile("quick").duration_s(bad, 3)


def test_unknown_profile_and_mode_name_the_choices():
    with pytest.raises(ValueError, match="seed"):
        profiles.get_profile("fast")
    with pytest.raises(ValueError, match="isolated"):
        profiles.modes_for("parallel")
    assert profiles.modes_for("both") == ["coupled", "isolated"]


def test_service_table_reads_submetrics_and_missing_drops_as_zero():
    summary = {
        "metrics": {
            "http_reqs{service:a}": {"count": 90},
            "http_req_failed{service:a}": {"passes": 9, "fails": 81, "value": 0.1},
            "http_req_duration{service:a}": {"p(50)": 1.0, "p(95)": 2.5, "p(99)": 4.0},
            "dropped_iterations{scenario:b}": {"count": 7},
            "http_reqs{service:b}": {"count": 50},
        }
    }
    table = loadtest.service_table(summary, ["a", "b"], "isolated", 100)
    assert table.loc["a", "requests"] == 90
    assert table.loc["a", "reached_ratio"] == pytest.approx(0.9)
    assert table.loc["a", "failed"] == 9
    assert table.loc["a", "p95_ms"] == 2.5
    assert table.loc["a", "dropped_iterations"] == 0  # absent in k6's summary = none dropped
    assert table.loc["b", "dropped_iterations"] == 7


def test_planned_is_one_whole_number_everywhere():
    """One definition of "planned": the report printed 5038, 5037.5 and 15112 for one run."""
    quick = profiles.get_profile("quick")
    assert isinstance(quick.planned_requests(), int)
    table = loadtest.service_table({"metrics": {}}, ["a"], "coupled", quick.planned_requests())
    assert table.loc["a", "planned_requests"] == quick.planned_requests()


def test_a_frozen_profile_survives_edits_of_the_source(tmp_path):
    source = tmp_path / "profiles.json"
    source.write_text(profiles.PROFILES_FILE.read_text())
    smoke = profiles.get_profile("smoke", source)
    profiles.freeze(smoke, tmp_path / "run")
    source.write_text(source.read_text().replace('"start_rate": 60', '"start_rate": 6'))
    assert profiles.get_profile("smoke", source).start_rate == 6
    assert profiles.frozen(tmp_path / "run") == smoke

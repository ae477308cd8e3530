"""Verdicts: correctness always, bandwidth against a profile or --expect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slurmkit.bench import verdict as v
from slurmkit.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl-tests"
GiB = 1024**3


@dataclass
class Row:
    size_bytes: int
    oop_busbw_gbps: float | None = None
    ip_busbw_gbps: float | None = None
    oop_wrong: int | None = 0
    ip_wrong: int | None = 0


@dataclass
class Issue:
    line: int
    message: str


@dataclass
class Run:
    source: str = "log"
    run: int = 0
    collective: str | None = "all_reduce"
    rows: list[Row] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)


def sweep(*busbw_by_gib: tuple[float, float], **kw) -> Run:
    """A run with rows at 1, 2, 4, ... GiB; each item is (out-of-place, in-place) busbw."""
    rows = [Row(GiB << i, oop, ip) for i, (oop, ip) in enumerate(busbw_by_gib)]
    return Run(rows=rows, **kw)


def test_packaged_profiles_load_with_their_published_numbers():
    profiles = v.load_profiles()
    assert profiles["h100-nvlink-8gpu"].min_busbw_gbps == 440
    assert profiles["h100-nvlink-8gpu"].min_size_bytes == 8 * GiB
    assert profiles["h100-ndr-8rail"].min_busbw_gbps == 360
    assert profiles["ndr-1rail"].min_busbw_gbps == 44
    assert profiles["local"].op == "all_reduce"
    assert all(p.source and p.description for p in profiles.values())


def test_pass_on_average_out_of_place_busbw_at_or_above_min_size():
    # rows at 1, 2, 4, 8, 16 GiB; judged: 8 and 16 GiB -> (430 + 460) / 2 = 445 >= 440
    run = sweep((100, 100), (200, 200), (300, 300), (430, 400), (460, 400))
    result = v.judge([run], profile="h100-nvlink-8gpu")
    assert result.passed, result.reasons
    assert result.exit_code == 0
    assert result.measured_gbps == pytest.approx(445.0)
    assert result.runs[0].sizes_judged == [8 * GiB, 16 * GiB]
    assert result.runs[0].ip_busbw_gbps == pytest.approx(400.0)
    assert result.summary().startswith("PASS [h100-nvlink-8gpu]: busbw 445.00 GB/s")


def test_fail_on_bandwidth_names_measured_and_expected():
    run = sweep((100, 100), (200, 200), (300, 300), (420, 500), (430, 500))
    result = v.judge([run], profile="h100-nvlink-8gpu")
    assert not result.passed
    assert result.exit_code == 1
    assert result.measured_gbps == pytest.approx(425.0)
    assert len(result.reasons) == 1
    assert "busbw 425.00 GB/s < expected 440 GB/s" in result.reasons[0]
    assert "out-of-place" in result.reasons[0]


def test_expect_overrides_profile_and_defaults_to_the_largest_size():
    run = sweep((10, 10), (20, 20), (30, 30))
    assert v.judge([run], expect_gbps=29).passed  # only the 4 GiB row is judged
    assert not v.judge([run], expect_gbps=31).passed
    assert v.judge([run], expect_gbps=19, min_size_bytes=2 * GiB).measured_gbps == pytest.approx(25.0)
    assert v.judge([run], profile="ndr-1rail", expect_gbps=5).passed


def test_no_expectation_judges_correctness_only():
    result = v.judge([sweep((0.01, 0.01))])
    assert result.passed
    assert result.expect_gbps is None and result.measured_gbps is None
    assert "correctness only" in result.summary()


def test_wrong_elements_fail_even_when_fast():
    run = sweep((500, 500), (500, 500), (500, 500), (500, 500))
    run.rows[1].ip_wrong = 3
    result = v.judge([run], profile="h100-nvlink-8gpu")
    assert not result.passed
    assert result.reasons == ["log #0 (all_reduce): 3 wrong element(s) in-place at 2 GiB"]
    assert result.measured_gbps == pytest.approx(500.0)


def test_aborted_run_and_empty_run_fail():
    aborted = sweep((50, 50), errors=[Issue(7, "Test NCCL failure common.cu:1279 'remote process exited'")])
    result = v.judge([aborted], expect_gbps=1)
    assert not result.passed
    assert any("line 7" in r and "Test NCCL failure" in r for r in result.reasons)

    empty = Run(rows=[], errors=[])
    result = v.judge([empty], expect_gbps=1)
    assert not result.passed
    assert result.reasons == ["log #0 (all_reduce): no result rows (the run failed or aborted before its first size)"]

    assert not v.judge([]).passed
    assert v.judge([]).reasons == ["no nccl-tests run found in the output"]


def test_min_size_never_reached_fails_and_says_how_far_it_went():
    run = sweep((500, 500), (500, 500))  # up to 2 GiB
    result = v.judge([run], profile="h100-nvlink-8gpu")
    assert not result.passed
    assert "no row at or above 8 GiB (largest measured: 2 GiB)" in result.reasons[0]


def test_bandwidth_judged_only_on_the_profile_collective():
    gather = sweep((1, 1), collective="all_gather")
    reduce = sweep((50, 50), collective="all_reduce")
    assert v.judge([gather, reduce], profile="ndr-1rail").passed
    result = v.judge([gather], profile="ndr-1rail")
    assert not result.passed
    assert result.reasons == ["no all_reduce run to judge bandwidth on (runs found: all_gather)"]


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(v.UnknownProfile) as err:
        v.judge([sweep((1, 1))], profile="h200-magic")
    message = str(err.value)
    assert "h200-magic" in message
    for name in ("h100-ndr-8rail", "h100-nvlink-8gpu", "local", "ndr-1rail"):
        assert name in message
    assert err.value.exit_code == 2


def test_profile_file_problems_are_all_listed():
    text = """
profiles:
  - {name: a, description: d, source: s, op: all_reduce, min_size_bytes: 1, min_busbw_gbps: 1, colour: red}
  - {name: b, description: d, source: s, op: all_reduce, min_busbw_gbps: 1}
  - {name: c, description: d, source: s, op: all_reduce, min_size_bytes: 1, min_busbw_gbps: -3}
"""
    with pytest.raises(ConfigError) as err:
        v.load_profiles(text, source="test.yaml")
    paths = [p.path for p in err.value.problems]
    assert paths == ["profiles[0].colour", "profiles[1].min_size_bytes", "profiles[2].min_busbw_gbps"]


# ---- on real logs, through the parser -----------------------------------------------------------------------

def test_real_ten_node_log_passes_one_rail_and_fails_eight_rails():
    parse = pytest.importorskip("slurmkit.bench.parse")
    text = (FIXTURES / "nccl-14-h100-10node-concat-5collectives-double.txt").read_text()
    runs = parse.parse_text(text, "nccl-14")
    # all_reduce rows >= 1 GiB, out-of-place busbw read from the file: 48.63 48.76 48.71 48.79 48.89
    result = v.judge(runs, profile="ndr-1rail")
    assert result.passed, result.reasons
    assert result.measured_gbps == pytest.approx((48.63 + 48.76 + 48.71 + 48.79 + 48.89) / 5)
    # >= 8 GiB: 48.79 and 48.89 out-of-place; 48.54 and 48.89 in-place
    result = v.judge(runs, profile="h100-ndr-8rail")
    assert not result.passed
    assert result.measured_gbps == pytest.approx((48.79 + 48.89) / 2)
    judged = [rj for rj in result.runs if rj.bandwidth_judged]
    assert len(judged) == 1 and judged[0].ip_busbw_gbps == pytest.approx((48.54 + 48.89) / 2)


def test_real_failed_log_fails_without_rows():
    parse = pytest.importorskip("slurmkit.bench.parse")
    text = (FIXTURES / "nccl-16-h100-2node-g8-both-fail-multiproc.txt").read_text()
    result = v.judge(parse.parse_text(text, "nccl-16"))
    assert not result.passed
    assert any("no result rows" in r for r in result.reasons)
    assert any("failed" in r for r in result.reasons)


# ---- same-run baseline -------------------------------------------------------------------------------------

MiB = 1024**2


def mib_run(busbw: float, source: str = "logs/cluster.log", **kw) -> Run:
    """A run at 1, 4 and 16 MiB, the same out-of-place busbw at each."""
    return Run(source=source, rows=[Row(MiB << s, busbw, busbw) for s in (0, 2, 4)], **kw)


def test_the_local_profile_is_judged_against_a_same_run_baseline_not_a_fixed_figure():
    local = v.load_profiles()["local"]
    assert local.min_busbw_gbps is None
    assert local.baseline == v.Baseline("one-node", local.baseline.min_ratio) and 0 < local.baseline.min_ratio < 1
    assert "one-node" in v.BASELINE_MEASURES


def test_ratio_to_the_baseline_passes_and_fails_with_every_figure_in_the_text():
    base = {"logs/cluster.log": [mib_run(0.36, "logs/cluster-baseline.log")]}
    ok = v.judge([mib_run(0.22)], profile="local", baselines=base, min_ratio=0.3)
    assert ok.passed and ok.ratio == pytest.approx(0.22 / 0.36) and ok.baseline_gbps == pytest.approx(0.36)
    assert ok.summary() == ("PASS [local]: busbw 0.22 GB/s = 0.61 of the same-run baseline 0.36 GB/s, needs >= 0.3 "
                            "(out-of-place average at >= 16 MiB)")
    bad = v.judge([mib_run(0.05)], profile="local", baselines=base, min_ratio=0.3)
    assert not bad.passed and bad.exit_code == 1
    assert bad.reasons == ["logs/cluster.log #0 (all_reduce): busbw 0.05 GB/s = 0.14 of the same-run baseline 0.36 "
                           "GB/s, needs >= 0.3 (out-of-place, average over 1 size(s) >= 16 MiB)"]
    assert bad.to_dict()["ratio"] == pytest.approx(0.05 / 0.36) and bad.to_dict()["min_ratio"] == 0.3


def test_the_ratio_is_the_same_whatever_the_speed_of_the_machine():
    for scale in (10.0, 1.0, 0.1):
        base = {"logs/cluster.log": [mib_run(0.5 * scale)]}
        assert v.judge([mib_run(0.4 * scale)], profile="local", baselines=base, min_ratio=0.5).passed
        assert not v.judge([mib_run(0.2 * scale)], profile="local", baselines=base, min_ratio=0.5).passed


def test_each_run_is_divided_by_its_own_jobs_baseline_and_the_worst_ratio_is_reported():
    runs = [mib_run(0.4, "logs/r0-a-b.log"), mib_run(0.3, "logs/r0-c-d.log")]
    base = {"logs/r0-a-b.log": [mib_run(0.5)], "logs/r0-c-d.log": [mib_run(1.5)]}
    result = v.judge(runs, profile="local", baselines=base, min_ratio=0.3)
    assert not result.passed and [rj.ratio for rj in result.runs] == pytest.approx([0.8, 0.2])
    assert result.ratio == pytest.approx(0.2) and result.measured_gbps == pytest.approx(0.3)
    assert len(result.reasons) == 1 and "logs/r0-c-d.log" in result.reasons[0]


def test_a_missing_or_broken_baseline_fails_naming_it():
    result = v.judge([mib_run(0.4)], profile="local", baselines={})
    assert not result.passed
    assert result.reasons == ["logs/cluster.log #0 (all_reduce): no same-run baseline in the job's log (its "
                              "baseline step did not run)"]
    assert "none measured" in result.summary()
    broken = mib_run(0.5)
    broken.rows[0].oop_wrong = 2
    result = v.judge([mib_run(0.4)], profile="local", baselines={"logs/cluster.log": [broken]})
    assert not result.passed and result.reasons == [
        "logs/cluster.log baseline: 2 wrong element(s) out-of-place at 1 MiB"]
    short = Run(rows=[Row(MiB, 0.5, 0.5)])  # no row at the profile's 16 MiB
    result = v.judge([mib_run(0.4)], profile="local", baselines={"logs/cluster.log": [short]})
    assert not result.passed and "no row at or above 16 MiB" in result.reasons[0]


def test_expect_replaces_the_baseline_rule_and_use_baseline_false_drops_it():
    result = v.judge([mib_run(0.4)], profile="local", expect_gbps=0.3)
    assert result.passed and result.min_ratio is None and result.expect_gbps == 0.3
    assert not v.judge([mib_run(0.4)], profile="local", expect_gbps=0.5).passed
    result = v.judge([mib_run(0.4)], profile="local", use_baseline=False)
    assert result.passed and result.min_ratio is None
    assert "correctness only" in result.summary()


def test_absolute_and_ratio_together_both_apply():
    text = """
profiles:
  - name: both
    description: d
    source: s
    op: all_reduce
    min_size_bytes: 16777216
    min_busbw_gbps: 0.3
    baseline: {measure: one-node, min_ratio: 0.5}
"""
    prof = v.load_profiles(text)["both"]
    base = {"logs/cluster.log": [mib_run(1.0)]}
    assert v.judge([mib_run(0.6)], profile=prof, baselines=base).passed
    slow = v.judge([mib_run(0.4)], profile=prof, baselines=base)
    assert not slow.passed and "0.40 of the same-run baseline" in slow.reasons[0]
    assert slow.summary() == ("FAIL [both]: busbw 0.40 GB/s (expected >= 0.3 at >= 16 MiB) = 0.40 of the same-run "
                              "baseline 1.00 GB/s, needs >= 0.5")
    fast_base = v.judge([mib_run(0.2)], profile=prof, baselines={"logs/cluster.log": [mib_run(0.3)]})
    assert not fast_base.passed and "< expected 0.3 GB/s" in fast_base.reasons[0]


def test_baseline_problems_in_a_profile_file_are_all_listed():
    text = """
profiles:
  - {name: a, description: d, source: s, op: all_reduce, min_size_bytes: 1}
  - {name: b, description: d, source: s, op: all_reduce, min_size_bytes: 1, baseline: {measure: tcp, min_ratio: 2}}
  - {name: c, description: d, source: s, op: all_reduce, min_size_bytes: 1, baseline: {min_ratio: 0.5, x: 1}}
  - {name: d, description: d, source: s, op: all_reduce, min_size_bytes: 1, baseline: 0.5}
"""
    with pytest.raises(ConfigError) as err:
        v.load_profiles(text, source="test.yaml")
    paths = [p.path for p in err.value.problems]
    assert paths == ["profiles[0]", "profiles[1].baseline.measure", "profiles[1].baseline.min_ratio",
                     "profiles[2].baseline.x", "profiles[2].baseline.measure", "profiles[3].baseline"]
    assert "unknown measure 'tcp'; valid: one-node" in str(err.value)

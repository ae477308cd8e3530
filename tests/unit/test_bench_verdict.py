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

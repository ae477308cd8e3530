"""Bench reports built from run directories of the real logs in tests/fixtures/nccl-tests."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from slurmkit.bench.report import build_report, human_bytes, node_set_values, write_report
from slurmkit.bench.results import RunLog, load_run, save_run
from slurmkit.cli import cli as cli_group
from tests.conftest import FIXTURES

NT = FIXTURES / "nccl-tests"
F04 = NT / "nccl-04-awsdt-2xp4de-srun-label-nofooter.txt"
F10 = NT / "nccl-10-a3mega-2node-h100-rankheader.txt"
F18 = NT / "nccl-18-deepops2019-oldfmt-c0-na-indented.txt"
T1 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
T2 = datetime(2025, 3, 2, 9, 0, tzinfo=timezone.utc)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pairs_run(out, when=T2):
    verdict = {"passed": False, "reasons": ["pair node-[3-4]: busbw 77.56 GB/s < expected 100 GB/s"],
               "expect_gbps": 100.0, "min_size_bytes": 1 << 30}
    return save_run(out, [RunLog(F10, nodes=["node-1", "node-2"]), RunLog(F04, nodes=["node-3", "node-4"])],
                    mode="pairs", verdict=verdict, culprits=[{"node": "node-3", "message": "slowest link"}],
                    when=when, environment={"NCCL_IB_HCA": "^mlx5_0"})


def test_human_bytes():
    assert [human_bytes(v) for v in (8, 1024, 3 * 1024**2, 8 * 1024**3, 1536)] == ["8", "1K", "3M", "8G", "1.5K"]


def test_cluster_run_report(tmp_path):
    run = save_run(tmp_path, [F10], when=T1, environment={},
                   verdict={"passed": False, "reasons": ["busbw 338.82 GB/s < expected 360 GB/s"],
                            "expect_gbps": 360.0, "min_size_bytes": 8589934592})
    rep = build_report(run)
    assert rep.html == run / "report.html" and write_report(run) == rep.html
    assert set(rep.plots) == {"busbw", "latency"}  # no per-node chart in cluster mode, no history for one run
    for png in rep.plots.values():
        assert png.parent == run / "plots" and png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    html = rep.html.read_text()
    head = html[: html.index("<h2>Plots</h2>")]
    assert "FAIL" in head and "busbw 338.82 GB/s &lt; expected 360 GB/s" in head
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 2
    assert 'href="plots/busbw.png"' in html and 'href="logs/nccl-10-a3mega-2node-h100-rankheader.log"' in html
    assert "<td>8G</td><td>8589934592</td>" in html  # the sweep table's last size
    assert rep.text.startswith("FAIL")
    assert "busbw at 8G: out-of-place 338.82 GB/s, in-place 337.35 GB/s" in rep.text


def test_pairs_report_marks_the_culprit(tmp_path):
    run = _pairs_run(tmp_path)
    values = {v["node_set"]: v for v in node_set_values(load_run(run))}
    # mean out-of-place busbw over the sizes >= 1 GiB, read off the logs
    assert values["node-[1-2]"]["busbw_gbps"] == pytest.approx((297.86 + 318.40 + 330.58 + 338.82) / 4)
    assert values["node-[3-4]"]["busbw_gbps"] == pytest.approx((76.79 + 78.33) / 2)
    assert values["node-[3-4]"]["below"] and values["node-[3-4]"]["culprit"]
    assert not values["node-[1-2]"]["below"] and not values["node-[1-2]"]["culprit"]

    rep = build_report(run)
    assert set(rep.plots) == {"busbw", "latency", "node_sets"}
    html = rep.html.read_text()
    assert "node-3: slowest link" in html[: html.index("<h2>Plots</h2>")]
    assert "lowest pair: node-[3-4] 77.56 GB/s" in rep.text
    assert "culprit: node-3: slowest link" in rep.text


def test_results_dir_report_has_history(tmp_path):
    save_run(tmp_path, [F10], when=T1, environment={}, verdict={"passed": True, "reasons": []})
    _pairs_run(tmp_path)
    rep = build_report(tmp_path)
    assert rep.html == tmp_path / "report.html"
    assert set(rep.plots) == {"busbw", "latency", "node_sets", "history"}
    assert "history: 2 runs" in rep.text
    assert re.search(r"2025-03-01T12:00:00Z\s+cluster\s+PASS\s+338.82 GB/s", rep.text)
    html = rep.html.read_text()
    # the latest run's logs are linked through its directory
    assert 'href="20250302T090000Z-pairs-nccl-tests/logs/nccl-04-awsdt-2xp4de-srun-label-nofooter.log"' in html


def test_not_judged_and_old_format(tmp_path):
    run = save_run(tmp_path, [F18], when=T1, environment={})
    rep = build_report(run)
    assert rep.text.startswith("NOT JUDGED")
    assert "busbw" in rep.plots
    assert "<td>-</td>" in rep.html.read_text()  # #wrong is not printed by the old format


def test_cli_report(tmp_path):
    run = _pairs_run(tmp_path)
    res = CliRunner().invoke(cli_group, ["bench", "report", str(run)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("FAIL") and f"report: {run / 'report.html'}" in res.output
    assert (run / "report.html").is_file()


def test_cli_report_without_results(tmp_path, cli):
    res = cli("bench", "report", str(tmp_path))  # the real command line: main() turns NoResults into exit 2
    assert res.returncode == 2
    assert res.stderr.strip() == (f"error: {tmp_path}: no bench results found "
                                  "(expected a run directory with meta.json, or a directory of them)")
    assert not (tmp_path / "report.html").exists()


def test_pairs_judged_against_their_own_baselines(tmp_path):
    # pair node-[1-2]: F10 (338.82 GB/s at 8G) with a baseline of itself: ratio 1; pair node-[3-4]: F04 (76.79 at
    # 1G, up to 2G) with F10 as its baseline: far below 0.5 of it
    verdict = {"passed": False, "reasons": ["slow pair"], "expect_gbps": None, "min_size_bytes": 1 << 30,
               "min_ratio": 0.5, "baseline_gbps": 300.0, "ratio": 0.25, "baseline_measure": "one-node"}
    logs = [RunLog(F10, name="r0-a-1.log", nodes=["node-1", "node-2"]),
            RunLog(F10, name="r0-a-1-baseline.log", nodes=["node-1"]),
            RunLog(F04, name="r0-b-2.log", nodes=["node-3", "node-4"]),
            RunLog(F10, name="r0-b-2-baseline.log", nodes=["node-3"])]
    run = save_run(tmp_path, logs, mode="pairs", verdict=verdict, when=T1)
    values = {v["node_set"]: v for v in node_set_values(load_run(run))}
    assert set(values) == {"node-[1-2]", "node-[3-4]"}  # the baselines are no node set of their own
    assert values["node-[1-2]"]["ratio"] == pytest.approx(1.0) and not values["node-[1-2]"]["below"]
    assert values["node-[3-4]"]["ratio"] < 0.5 and values["node-[3-4]"]["below"]
    rep = build_report(run)
    assert "node_sets" in rep.plots and "verdict: min_ratio" in rep.html.read_text()


def test_cluster_run_draws_its_baseline_and_the_ratio_threshold(tmp_path):
    from slurmkit.bench import report as rp

    verdict = {"passed": True, "reasons": [], "expect_gbps": None, "min_size_bytes": 1 << 30, "min_ratio": 0.3,
               "baseline_gbps": 300.0, "ratio": 1.1, "summary": "PASS [x]: busbw 330 GB/s = 1.10 of the same-run "
                                                                 "baseline 300.00 GB/s, needs >= 0.3"}
    run = save_run(tmp_path, [RunLog(F10, name="cluster-7.log", nodes=["node-1", "node-2"]),
                              RunLog(F04, name="cluster-7-baseline.log", nodes=["node-1"])], verdict=verdict, when=T1)
    saved = load_run(run)
    assert rp._threshold(saved.meta) == (pytest.approx(90.0), 1 << 30)
    assert rp._threshold_label(saved.meta, 90.0) == "expected >= 0.3 x same-run baseline 300.00 = 90.00 GB/s"
    labels = [label for label, _ in rp._series([saved], per_run=False)]
    assert labels == ["node-[1-2]", "same-run baseline (node-1)"]
    assert "of the same-run baseline" in build_report(run).text

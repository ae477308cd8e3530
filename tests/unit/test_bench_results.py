"""The bench results store: run directories built from the real logs in tests/fixtures/nccl-tests, read back as
pandas. Expected values are read off the fixture files by eye."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from slurmkit.bench.parse import COLUMNS
from slurmkit.bench.results import (
    EXTRA_COLUMNS, HISTORY_COLUMNS, NoResults, RunLog, find_runs, history, load_run, save_run, verdict_to_dict,
)
from tests.conftest import FIXTURES

NT = FIXTURES / "nccl-tests"
F04 = NT / "nccl-04-awsdt-2xp4de-srun-label-nofooter.txt"
F10 = NT / "nccl-10-a3mega-2node-h100-rankheader.txt"
F13 = NT / "nccl-13-a100pcie-1node-reduce_scatter-ncclinfo.txt"
F14 = NT / "nccl-14-h100-10node-concat-5collectives-double.txt"
F16 = NT / "nccl-16-h100-2node-g8-both-fail-multiproc.txt"
T1 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
T2 = datetime(2025, 3, 2, 9, 30, 5, tzinfo=timezone.utc)


def test_run_directory_layout_and_rows(tmp_path):
    run = save_run(tmp_path, [F10], mode="cluster", engine="nccl-tests", cluster="a3mega", when=T1,
                   environment={"NCCL_IB_HCA": "^mlx5_0", "NCCL_DEBUG": "WARN", "PATH": "/usr/bin"},
                   sweep={"min_bytes": 8, "max_bytes": 8589934592, "step_factor": 2})
    assert run == tmp_path / "20250301T120000Z-cluster-nccl-tests"
    log = run / "logs" / "nccl-10-a3mega-2node-h100-rankheader.log"
    assert log.read_bytes() == F10.read_bytes()

    rows = pd.read_parquet(run / "rows.parquet")
    assert list(rows.columns) == list(COLUMNS) + list(EXTRA_COLUMNS)
    assert len(rows) == 31  # 8 B .. 8 GiB, factor 2
    assert set(rows["source"]) == {"logs/nccl-10-a3mega-2node-h100-rankheader.log"}
    # the two hosts of the rank lines (ranks 0-7 and 8-15), folded
    assert set(rows["node_set"]) == {"ztan-mig-235z,ztan-mig-gq73"}
    assert set(rows["nnodes"]) == {2} and set(rows["attempt"]) == {0}
    last = rows.iloc[-1]
    assert last["size_bytes"] == 8589934592 and last["oop_busbw_gbps"] == 338.82 and last["ip_busbw_gbps"] == 337.35

    meta = json.loads((run / "meta.json").read_text())
    assert meta["schema"] == 1 and meta["id"] == run.name
    assert meta["time"] == "2025-03-01T12:00:00Z"
    assert (meta["cluster"], meta["mode"], meta["engine"], meta["op"]) == ("a3mega", "cluster", "nccl-tests",
                                                                           "all_reduce")
    assert meta["nodes"] == ["ztan-mig-235z", "ztan-mig-gq73"]
    assert meta["environment"] == {"NCCL_DEBUG": "WARN", "NCCL_IB_HCA": "^mlx5_0"}
    assert meta["sweep"]["max_bytes"] == 8589934592
    assert meta["versions"]["slurmkit"] and meta["versions"]["nccl_tests"] is None  # F10 prints no version
    assert meta["verdict"] is None and meta["culprits"] == []
    assert meta["runs"][0]["nranks"] == 16 and meta["runs"][0]["avg_busbw_gbps"] == 70.742
    assert meta["logs"][0]["failed_runs"] == 0


def test_versions_read_from_the_logs(tmp_path):
    run = save_run(tmp_path, [F13, F14], when=T1, environment={}, versions={"slurm": "22.05.8", "torch": None})
    versions = json.loads((run / "meta.json").read_text())["versions"]
    assert versions["nccl_tests"] == "2.17.6"  # F13 line 1 comes first
    assert versions["nccl"] == "2.23.4+cuda12.6"  # F13 line 10
    assert versions["slurm"] == "22.05.8" and versions["torch"] is None


def test_plain_dict_verdict_and_culprits(tmp_path):
    verdict = {"passed": False, "reasons": ["pair node-[3-4]: busbw 76.79 GB/s < expected 100 GB/s"],
               "culprits": ["node-3"], "expect_gbps": 100.0, "min_size_bytes": 1 << 30}
    run = save_run(tmp_path, [RunLog(F10, nodes=["node-1", "node-2"]), RunLog(F04, nodes=["node-3", "node-4"])],
                   mode="pairs", verdict=verdict, culprits=[{"node": "node-3", "message": "slow link"}],
                   when=T1, environment={})
    saved = load_run(run)
    assert saved.meta["verdict"]["passed"] is False
    assert saved.meta["verdict"]["reasons"] == verdict["reasons"]
    assert saved.meta["verdict"]["expect_gbps"] == 100.0
    assert saved.meta["culprits"] == [{"message": "node-3"}, {"node": "node-3", "message": "slow link"}]
    assert saved.meta["node_set"] == "node-[1-4]"
    by_set = saved.rows.groupby("node_set")["size_bytes"].max().to_dict()
    assert by_set == {"node-[1-2]": 8589934592, "node-[3-4]": 2147483648}  # F04 ends at 2 GiB
    assert [log.name for log in saved.logs] == ["nccl-04-awsdt-2xp4de-srun-label-nofooter.log",
                                                "nccl-10-a3mega-2node-h100-rankheader.log"]


def test_verdict_object_from_the_verdict_module(tmp_path):
    verdict_mod = pytest.importorskip("slurmkit.bench.verdict")
    from slurmkit.bench.parse import parse_file

    v = verdict_mod.judge(parse_file(F10), expect_gbps=360.0, min_size_bytes=8589934592, op="all_reduce")
    run = save_run(tmp_path, [F10], verdict=v, when=T1, environment={})
    stored = load_run(run).meta["verdict"]
    assert stored["passed"] is False  # 338.82 < 360 at 8 GiB
    assert stored["reasons"] and "338.82" in stored["reasons"][0]
    assert stored["expect_gbps"] == 360.0 and stored["min_size_bytes"] == 8589934592


def test_verdict_dict_needs_passed():
    with pytest.raises(ValueError):
        verdict_to_dict({"reasons": []})
    assert verdict_to_dict({"passed": 1})["passed"] is True


def test_failed_log_is_stored_with_its_errors(tmp_path):
    run = save_run(tmp_path, [F16], when=T1, environment={})
    saved = load_run(run)
    assert saved.rows.empty and list(saved.rows.columns) == list(COLUMNS) + list(EXTRA_COLUMNS)
    assert saved.meta["runs"] and all(r["failed"] for r in saved.meta["runs"])
    assert saved.meta["logs"][0]["failed_runs"] == saved.meta["logs"][0]["runs"]


def test_same_second_gets_its_own_directory(tmp_path):
    a = save_run(tmp_path, [F10], when=T1, environment={})
    b = save_run(tmp_path, [F10], when=T1, environment={})
    assert a != b and b.name == a.name + "-2"


def test_history_across_runs_sorted_by_time(tmp_path):
    save_run(tmp_path, [F14], when=T2, environment={}, verdict={"passed": True, "reasons": []})
    save_run(tmp_path, [F10], when=T1, environment={})
    (tmp_path / "not-a-run").mkdir()
    assert [p.name[:16] for p in find_runs(tmp_path)] == ["20250301T120000Z", "20250302T093005Z"]

    h = history(tmp_path)
    assert list(h.columns) == list(HISTORY_COLUMNS)
    assert h["time"].is_monotonic_increasing
    first, second = h[h["time"] == pd.Timestamp(T1)], h[h["time"] == pd.Timestamp(T2)]
    assert len(first) == 31 and first["passed"].isna().all()
    big = first[first["size_bytes"] == 8589934592].iloc[0]
    assert big["oop_busbw_gbps"] == 338.82 and big["ip_busbw_gbps"] == 337.35 and big["node_sets"] == 1
    assert set(second["collective"]) == {"all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv"}
    assert second["passed"].all()
    ar = second[(second["collective"] == "all_reduce") & (second["size_bytes"] == 33554432)].iloc[0]
    assert ar["oop_busbw_gbps"] == 42.98 and ar["ip_busbw_gbps"] == 42.95  # F14 line 22


def test_history_aggregates_node_sets(tmp_path):
    save_run(tmp_path, [RunLog(F10, nodes=["n1", "n2"]), RunLog(F04, nodes=["n3", "n4"])], mode="pairs",
             when=T1, environment={})
    h = history(tmp_path)
    gib = h[h["size_bytes"] == 1073741824].iloc[0]
    assert gib["node_sets"] == 2
    assert gib["oop_busbw_min_gbps"] == 76.79  # F04
    assert gib["oop_busbw_gbps"] == pytest.approx((297.86 + 76.79) / 2)  # F10 and F04 at 1 GiB


def test_no_results(tmp_path):
    with pytest.raises(NoResults) as err:
        load_run(tmp_path)
    assert err.value.exit_code == 2
    with pytest.raises(NoResults):
        history(tmp_path)
    with pytest.raises(NoResults):
        find_runs(tmp_path / "missing")

"""The torch engine: its pure parts, and real 2-rank gloo runs on localhost through torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slurmkit.bench import torch_engine as te

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


# ---- pure parts ---------------------------------------------------------------------------------------------

def test_parse_size_uses_powers_of_1024():
    assert te.parse_size("8") == 8
    assert te.parse_size("1K") == 1024
    assert te.parse_size("64k") == 65536
    assert te.parse_size("2M") == 2 * 1024 * 1024
    assert te.parse_size("8G") == 8589934592
    assert te.parse_size("0.5K") == 512


def test_sweep_sizes_factor_and_step():
    assert te.sweep_sizes(1024, 65536, 4) == [1024, 4096, 16384, 65536]
    assert te.sweep_sizes(8, 100, 2) == [8, 16, 32, 64]
    assert te.sweep_sizes(100, 400, 1, 150) == [100, 250, 400]
    with pytest.raises(ValueError):
        te.sweep_sizes(2048, 1024, 2)


def test_coll_counts_follow_nccl_tests_rounding():
    # all_reduce: count = size / typesize
    c = te.coll_counts("all_reduce", 1026, 4, 2)
    assert (c.param, c.printed_size(4)) == (256, 1024)
    # all_gather on 10 double ranks, 32 MiB requested: the fixture nccl-14 prints 33554400 and 419430
    c = te.coll_counts("all_gather", 33554432, 8, 10)
    assert (c.printed_size(8), c.param) == (33554400, 419430)
    c = te.coll_counts("reduce_scatter", 33554432, 8, 10)
    assert (c.printed_size(8), c.param, c.send, c.recv) == (33554400, 419430, 4194300, 419430)
    c = te.coll_counts("alltoall", 1000, 4, 3)
    assert (c.printed_size(4), c.param) == (996, 83)
    c = te.coll_counts("broadcast", 64, 2, 8)
    assert (c.printed_size(2), c.param) == (64, 32)


@pytest.mark.parametrize(
    "op,n,factor",
    [("all_reduce", 8, 1.75), ("all_reduce", 2, 1.0), ("all_gather", 8, 0.875), ("reduce_scatter", 4, 0.75),
     ("alltoall", 16, 0.9375), ("broadcast", 8, 1.0)],
)
def test_busbw_factors_from_performance_md(op, n, factor):
    assert te.busbw_factor(op, n) == pytest.approx(factor)
    algbw, busbw = te.bandwidths(op, 2_000_000_000, 0.5, n)
    assert algbw == pytest.approx(4.0)
    assert busbw == pytest.approx(4.0 * factor)


def test_float_str_matches_nccl_tests_widths():
    # values as nccl-tests 2.17 prints them (fixture nccl-14): 1405.25, 10061.7, 158724 in a 7-wide column
    assert te.float_str(1405.25, 7) == "1405.25"
    assert te.float_str(10061.7, 7) == "10061.7"
    assert te.float_str(158724.0, 7) == " 158724"
    assert te.float_str(48.89, 6) == " 48.89"
    assert te.float_str(0.0, 6) == "  0.00"


def test_row_and_header_columns_line_up_with_nccl_tests():
    # header lines copied from fixture nccl-14 (nccl-tests 2.17.8)
    fixture = (ROOT / "tests/fixtures/nccl-tests/nccl-14-h100-10node-concat-5collectives-double.txt").read_text()
    lines = fixture.splitlines()
    start = lines.index(next(line for line in lines if line.strip().startswith("#       size")))
    assert te.header_lines() == lines[start - 1:start + 2]
    row = te.format_row_start(33554432, 4194304, "double", "sum", -1) + te.format_result(1405.25, 23.88, 42.98, 0)
    row += te.format_result(1406.35, 23.86, 42.95, 0)
    assert row == lines[start + 2]


def test_rendezvous_prefers_torchrun_then_slurm():
    rv = te.rendezvous_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "h1",
                                 "MASTER_PORT": "1234", "SLURM_PROCID": "7", "SLURM_NTASKS": "9"})
    assert (rv.rank, rv.world_size, rv.local_rank, rv.master_addr, rv.master_port, rv.launcher) == (
        3, 8, 1, "h1", 1234, "torchrun")
    rv = te.rendezvous_from_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "5",
                                 "SLURM_JOB_NODELIST": "gpu-[07-08]"})
    assert (rv.rank, rv.world_size, rv.local_rank, rv.master_addr, rv.master_port, rv.launcher) == (
        5, 16, 5, "gpu-07", 29500, "slurm")
    with pytest.raises(ValueError):
        te.rendezvous_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    assert te.rendezvous_from_env({}).launcher == "single"


# ---- real runs: 2 gloo ranks on localhost -------------------------------------------------------------------

def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("NCCL_TESTS_MIN_BW", None)
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "slurmkit.bench.torch_engine", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _rows(stdout: str) -> list[list[str]]:
    """The table rows, split on blanks: lines that do not start with '#' and begin with a number."""
    rows = []
    for line in stdout.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            rows.append(fields)
    return rows


@pytest.fixture(scope="module")
def all_reduce_run() -> subprocess.CompletedProcess:
    return _torchrun("-b", "1K", "-e", "64K", "-f", "4", "-n", "3", "-w", "1", "-c", "1")


def test_all_reduce_run_prints_one_checked_row_per_size(all_reduce_run):
    proc = all_reduce_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(proc.stdout)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1024, 256), (4096, 1024), (16384, 4096), (65536, 16384)]
    for size, count, dtype, redop, root, t, algbw, busbw, wrong, ip_t, ip_algbw, ip_busbw, ip_wrong in rows:
        assert (dtype, redop, root) == ("float", "sum", "-1")
        assert (wrong, ip_wrong) == ("0", "0")
        for time_us, alg, bus in ((t, algbw, busbw), (ip_t, ip_algbw, ip_busbw)):
            # algbw = size / time, busbw = algbw * 2(n-1)/n = algbw for n = 2, within the 2-decimal rounding
            assert float(alg) == pytest.approx(int(size) / (float(time_us) * 1e3), abs=0.0051)
            assert float(bus) == pytest.approx(float(alg) * 2 * (2 - 1) / 2, abs=0.0101)
    out = proc.stdout
    assert "# Collective test starting: all_reduce_perf" in out
    assert out.count("#  Rank ") == 2 and "device  0 [cpu] cpu" in out and "device  1 [cpu] cpu" in out
    assert "# Out of bounds values : 0 OK" in out
    assert "# Avg bus bandwidth    : " in out


def test_all_reduce_run_reads_back_through_the_parser(all_reduce_run):
    parse = pytest.importorskip("slurmkit.bench.parse")
    runs = parse.parse_text(all_reduce_run.stdout, "torch-engine")
    assert len(runs) == 1
    run = runs[0]
    assert run.nranks == 2
    assert run.collective == "all_reduce"
    assert not run.errors
    assert [r.size_bytes for r in run.rows] == [1024, 4096, 16384, 65536]
    assert [r.count for r in run.rows] == [256, 1024, 4096, 16384]
    assert all(r.oop_wrong == 0 and r.ip_wrong == 0 for r in run.rows)
    assert run.avg_busbw_gbps is not None


def test_check_off_prints_na_and_all_gather_rounds_per_rank():
    # -b 1002 float on 2 ranks: 250 elements, 125 per rank, printed as 1000 B / 125 elements
    proc = _torchrun("--op", "all_gather", "-b", "1002", "-e", "4008", "-f", "4", "-n", "2", "-w", "1", "-c", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(proc.stdout)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1000, 125), (4008, 501)]
    for r in rows:
        assert (r[3], r[4]) == ("none", "-1")
        assert (r[8], r[12]) == ("N/A", "N/A")
        assert float(r[7]) == pytest.approx(float(r[6]) * (2 - 1) / 2, abs=0.0101)
    assert "validation: 0" in proc.stdout


@pytest.mark.parametrize("op", ["reduce_scatter", "alltoall", "broadcast"])
def test_other_collectives_check_clean(op):
    proc = _torchrun("--op", op, "-b", "64", "-e", "4K", "-f", "64", "-n", "1", "-w", "0", "-c", "1", "-d", "half")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(proc.stdout)
    assert [int(r[0]) for r in rows] == [64, 4096]
    assert all(r[8] == "0" for r in rows)
    # in-place alltoall is not checked, as in nccl-tests
    assert all(r[12] == ("N/A" if op == "alltoall" else "0") for r in rows)


def test_a_raising_collective_prints_nccl_tests_failure_lines_and_exits_nonzero():
    proc = _torchrun("--op", "broadcast", "-r", "5", "-b", "8", "-e", "64", "-f", "8", "-n", "1", "-w", "0")
    assert proc.returncode != 0
    fails = [line for line in proc.stdout.splitlines() if ": Test failure torch_engine.py:" in line]
    assert len(fails) == 2  # one per rank
    assert proc.stdout.count("Test GLOO failure") == 2
    assert "invalid root rank: 5" in proc.stdout
    parse = pytest.importorskip("slurmkit.bench.parse")
    runs = parse.parse_text(proc.stdout, "torch-engine-failure")
    assert len(runs) == 1 and runs[0].errors and not runs[0].rows


def test_checks_work_chunk_by_chunk_and_count_each_wrong_element(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(te, "CHECK_CHUNK", 7)  # many chunks, one cut inside a rank's block
    args = te.parse_args(["--op", "all_reduce", "-b", "160", "-e", "160", "-c", "1"])
    bench = te._Bench(args, rank=1, nranks=2, device=torch.device("cpu"))
    counts = te.coll_counts("all_reduce", 160, 4, 2)
    bench.init_data(counts, in_place=False)
    i = torch.arange(40)
    assert bench.send[:40].tolist() == ((i + 1) % 4).float().tolist()  # rank 1's input
    # what an all_reduce(sum) over ranks 0 and 1 leaves behind, written out by hand
    bench.send[:40] = (i % 4 + (i + 1) % 4).float()
    assert bench.count_wrong(counts, in_place=False) == 0
    bench.send[[0, 13, 39]] += 1
    assert bench.count_wrong(counts, in_place=False) == 3

    args = te.parse_args(["--op", "alltoall", "-b", "96", "-e", "96", "-c", "1", "-d", "int32"])
    bench = te._Bench(args, rank=0, nranks=3, device=torch.device("cpu"))
    counts = te.coll_counts("alltoall", 96, 4, 3)  # 8 elements to each of 3 ranks
    # rank 0 receives from rank j the block (7*j + 3*0 + k) % 16, k = 0..7
    k = torch.arange(8)
    bench.recv[:24] = torch.cat([(7 * j + k) % 16 for j in range(3)]).int()
    assert bench.count_wrong(counts, in_place=False) == 0
    bench.recv[20] += 1
    assert bench.count_wrong(counts, in_place=False) == 1

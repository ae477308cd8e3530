"""`slurmkit bench parse`: output forms and exit codes, on the real logs in tests/fixtures/nccl-tests."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slurmkit.cli import cli, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl-tests"
F10 = FIXTURES / "nccl-10-a3mega-2node-h100-rankheader.txt"
F14 = FIXTURES / "nccl-14-h100-10node-concat-5collectives-double.txt"
F16 = FIXTURES / "nccl-16-h100-2node-g8-both-fail-multiproc.txt"
F18 = FIXTURES / "nccl-18-deepops2019-oldfmt-c0-na-indented.txt"

# Written out from DESIGN.md, "`bench parse` columns".
DESIGN_COLUMNS = (
    "source, run, collective, nranks, size_bytes, count, dtype, redop, root, oop_time_us, oop_algbw_gbps, "
    "oop_busbw_gbps, oop_wrong, oop_error, ip_time_us, ip_algbw_gbps, ip_busbw_gbps, ip_wrong, ip_error"
).split(", ")


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", "parse", *args])


def _exit_code(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(["bench", "parse", *args])
    return info.value.code


def test_bench_group_is_importable():
    from slurmkit.cli.bench import bench

    assert bench.name == "bench" and "parse" in bench.commands


def test_csv_header_and_rows():
    result = _invoke("--format", "csv", str(F10), str(F18))
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == DESIGN_COLUMNS
    assert len(rows) == 1 + 31 + 31
    first = dict(zip(rows[0], rows[1]))
    assert first["source"] == str(F10) and first["run"] == "0" and first["nranks"] == "16"
    assert (first["size_bytes"], first["oop_time_us"], first["ip_time_us"]) == ("8", "135.8", "123.5")
    assert first["collective"] == "" and first["oop_error"] == ""
    old = dict(zip(rows[0], rows[-1]))
    assert (old["size_bytes"], old["root"], old["oop_wrong"], old["nranks"]) == ("8589934592", "", "", "")
    assert float(old["ip_busbw_gbps"]) == 81.57


def test_json_shape():
    result = _invoke("--format", "json", str(F14))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["runs"]
    collectives = [r["collective"] for r in doc["runs"]]
    assert collectives == ["all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv"]
    for run in doc["runs"]:
        assert list(run) == ["source", "run", "collective", "nranks", "avg_busbw_gbps", "errors", "rows"]
        assert run["errors"] == [] and len(run["rows"]) == 10 and run["nranks"] == 10
        assert list(run["rows"][0]) == DESIGN_COLUMNS[4:]
    assert doc["runs"][0]["avg_busbw_gbps"] == 47.8165
    assert doc["runs"][3]["rows"][0]["ip_wrong"] is None  # N/A


def test_json_errors_of_failed_runs():
    result = _invoke("--format", "json", str(F16))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [len(r["errors"]) for r in doc["runs"]] == [6, 16]
    assert doc["runs"][1]["errors"][0]["line"] == 49
    assert "run 0 failed: line 22" in result.stderr


def test_parquet_round_trips(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "rows.parquet"
    result = _invoke("--format", "parquet", "-o", str(out), str(F10), str(F18))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == DESIGN_COLUMNS
    assert len(frame) == 62
    assert str(frame["oop_wrong"].dtype) == "Int64" and str(frame["oop_time_us"].dtype) == "float64"
    assert frame["oop_busbw_gbps"].iloc[30] == 338.82  # F10's 8 GiB row
    assert frame["root"].iloc[31:].isna().all()  # F18 has no root column


def test_parquet_needs_an_output_file():
    assert _invoke("--format", "parquet", str(F10)).exit_code == 2


def test_output_file_for_csv(tmp_path):
    out = tmp_path / "rows.csv"
    result = _invoke("--format", "csv", "-o", str(out), str(F10))
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().splitlines()[0] == ",".join(DESIGN_COLUMNS)


def test_table_lists_runs_rows_and_errors():
    result = _invoke(str(F10), str(F16))
    assert result.exit_code == 1
    assert "70.742" in result.stdout and "338.82" in result.stdout
    assert "line 22: cnode2-002: Test NCCL failure" in result.stdout
    assert result.stdout.count("FAILED") == 2


def test_exit_codes():
    assert _exit_code("--format", "csv", str(F10)) == 0
    assert _exit_code("--format", "csv", str(F10), str(F16)) == 1
    assert _exit_code("--format", "csv", str(FIXTURES / "SOURCES.md")) == 1  # no nccl-tests output in it


def test_exit_code_2_for_unreadable_files(tmp_path, capsys):
    binary = tmp_path / "core"
    binary.write_bytes(b"\x00\x01\x02")
    for path in (tmp_path / "missing.log", tmp_path, binary):
        assert _exit_code(str(F10), str(path)) == 2
        assert str(path) in capsys.readouterr().err


def test_console_script_exit_codes():
    exe = Path(sys.executable).parent / "slurmkit"
    if not exe.exists():
        pytest.skip("console script not installed")
    ok = subprocess.run([str(exe), "bench", "parse", "--format", "csv", str(F14)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.count("\n") == 51
    bad = subprocess.run([str(exe), "bench", "parse", str(F16)], capture_output=True, text=True)
    assert bad.returncode == 1
    missing = subprocess.run([str(exe), "bench", "parse", "/nonexistent/nccl.log"], capture_output=True, text=True)
    assert missing.returncode == 2 and "/nonexistent/nccl.log" in missing.stderr


def test_stderr_names_at_most_ten_failed_runs_then_a_count(tmp_path):
    # a log of many failed runs: the real nccl-16 (two runs that fail before any row) 60 times, then nccl-10
    big = tmp_path / "many-failed.log"
    big.write_text(F16.read_text() * 60 + F10.read_text())
    from slurmkit.bench.parse import parse_file

    runs = parse_file(big)
    failed = [r for r in runs if r.failed]
    assert len(failed) >= 100 and not runs[-1].failed
    for fmt in ("csv", "json", "parquet", "table"):
        result = CliRunner().invoke(cli, ["bench", "parse", "--format", fmt, "-o", str(tmp_path / f"out.{fmt}"),
                                          str(big)])
        assert result.exit_code == 1, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 11, lines[:20]
        assert [ln.split(" failed: ")[0] for ln in lines[:10]] == [f"{big}: run {r.run}" for r in failed[:10]]
        assert lines[10] == (f"... and {len(failed) - 10} more failed runs ({len(failed)} of {len(runs)} runs "
                             "failed)")


def test_stderr_names_every_failed_run_up_to_ten():
    result = _invoke("--format", "csv", str(F16))
    assert result.exit_code == 1
    assert [ln.split(" failed: ")[0] for ln in result.stderr.splitlines()] == [f"{F16}: run 0", f"{F16}: run 1"]

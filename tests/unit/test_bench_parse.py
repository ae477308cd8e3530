"""slurmkit.bench.parse on real nccl-tests outputs (tests/fixtures/nccl-tests, see SOURCES.md there).

Expected values were read off the fixture files by eye; line numbers are the files' own (1-based).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slurmkit.bench.parse import (
    COLUMNS,
    LogReadError,
    ParseIssue,
    Row,
    Run,
    parse_file,
    parse_text,
    runs_to_frame,
    runs_to_json,
)
from slurmkit.errors import SlurmkitError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl-tests"
F04 = FIXTURES / "nccl-04-awsdt-2xp4de-srun-label-nofooter.txt"
F10 = FIXTURES / "nccl-10-a3mega-2node-h100-rankheader.txt"
F13 = FIXTURES / "nccl-13-a100pcie-1node-reduce_scatter-ncclinfo.txt"
F14 = FIXTURES / "nccl-14-h100-10node-concat-5collectives-double.txt"
F16 = FIXTURES / "nccl-16-h100-2node-g8-both-fail-multiproc.txt"
F18 = FIXTURES / "nccl-18-deepops2019-oldfmt-c0-na-indented.txt"


def _lines(path: Path) -> list[str]:
    return path.read_text().split("\n")


def _row(run: Run, size: int) -> Row:
    (row,) = [r for r in run.rows if r.size_bytes == size]
    return row


# --- one test per fixture --------------------------------------------------------------------------------------


def test_srun_label_no_footer_2xp4de():
    (run,) = parse_file(F04)
    assert run.source == str(F04) and run.run == 0
    assert len(run.rows) == 29  # 8 B .. 2 GiB, every line prefixed "0: "
    assert run.collective is None  # no banner, no binary name in the excerpt
    assert run.nranks is None and run.hosts == []  # no rank lines printed
    assert run.avg_busbw_gbps is None and run.out_of_bounds is None  # no footer
    first = run.rows[0]
    assert (first.size_bytes, first.count, first.dtype, first.redop, first.root) == (8, 2, "float", "sum", -1)
    assert (first.oop_time_us, first.ip_time_us) == (164.3, 163.3)
    r = _row(run, 33554432)
    assert (r.oop_time_us, r.oop_algbw_gbps, r.oop_busbw_gbps, r.oop_wrong) == (1540.2, 21.79, 40.85, 0)
    assert (r.ip_time_us, r.ip_algbw_gbps, r.ip_busbw_gbps, r.ip_wrong) == (1540.7, 21.78, 40.83, 0)
    last = run.rows[-1]
    assert last.size_bytes == 2147483648 and last.oop_time_us == 51406 and last.oop_busbw_gbps == 78.33
    assert last.oop_error is None and last.ip_error is None  # a #wrong table has no error column
    assert run.errors == [] and not run.failed


def test_rank_header_a3mega_2x8_h100():
    (run,) = parse_file(F10)
    assert run.nranks == 16
    assert run.hosts == ["ztan-mig-235z", "ztan-mig-gq73"]
    assert run.avg_busbw_gbps == 70.742 and run.out_of_bounds == 0
    assert len(run.rows) == 31  # 8 B .. 8 GiB
    assert run.rows[0].oop_time_us == 135.8 and run.rows[0].ip_time_us == 123.5
    r = _row(run, 8589934592)
    assert (r.count, r.oop_time_us, r.oop_busbw_gbps, r.ip_time_us, r.ip_busbw_gbps) == (
        2147483648, 47535, 338.82, 47743, 337.35,
    )  # fmt: skip
    assert _row(run, 134217728).oop_algbw_gbps == 81.24
    assert not run.failed


def test_nccl_info_interleaved_reduce_scatter():
    (run,) = parse_file(F13)
    assert run.collective == "reduce_scatter"  # banner says reduce_scatter_perf
    assert run.nranks == 2 and run.hosts == ["n015"]
    assert len(run.rows) == 103  # lines 97..199, after 42 NCCL INFO lines inside the table
    assert run.rows[0].size_bytes == 1048576 and run.rows[0].oop_time_us == 458.55
    assert run.rows[0].oop_busbw_gbps == 1.14 and run.rows[0].ip_busbw_gbps == 1.35
    r = _row(run, 651165696)
    assert (r.oop_time_us, r.ip_time_us, r.ip_busbw_gbps) == (100368, 100030, 3.25)
    assert run.rows[-1].size_bytes == 1070596096
    assert run.avg_busbw_gbps == 3.31498 and run.out_of_bounds == 0
    assert run.errors == []


def test_five_collectives_concatenated_double():
    runs = parse_file(F14)
    assert [r.run for r in runs] == [0, 1, 2, 3, 4]
    assert [r.collective for r in runs] == ["all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv"]
    assert [r.avg_busbw_gbps for r in runs] == [47.8165, 46.7949, 47.1335, 43.6048, 24.7624]
    hosts = [f"cnode3-{n:03d}" for n in range(2, 12)]
    for run in runs:
        assert len(run.rows) == 10 and run.nranks == 10 and run.hosts == hosts
        assert {r.dtype for r in run.rows} == {"double"}
        assert not run.failed
    all_gather = runs[1]
    assert all_gather.rows[0].size_bytes == 33554400 and all_gather.rows[0].redop == "none"
    assert all_gather.rows[0].oop_time_us == 721.94 and all_gather.rows[0].ip_busbw_gbps == 43.92
    alltoall = runs[3]
    # alltoall prints N/A for the in-place #wrong: empty, not zero.
    assert all(r.ip_wrong is None and r.oop_wrong == 0 for r in alltoall.rows)
    last = runs[4].rows[-1]
    assert (last.size_bytes, last.oop_time_us, last.oop_busbw_gbps, last.ip_time_us) == (
        17179869184, 691104, 24.86, 690729,
    )  # fmt: skip


def test_both_runs_fail_before_any_row():
    runs = parse_file(F16)
    assert [r.collective for r in runs] == ["alltoall", "sendrecv"]
    for run in runs:
        assert run.nranks == 16 and run.hosts == ["cnode2-002", "cnode2-008"]
        assert run.rows == [] and run.failed
        assert run.avg_busbw_gbps is None
    assert [e.line for e in runs[0].errors] == list(range(22, 28))
    assert [e.line for e in runs[1].errors] == list(range(49, 65))
    assert runs[0].errors[0] == ParseIssue(
        22, "cnode2-002: Test NCCL failure common.cu:1279 'remote process exited or there was a network error / '"
    )
    assert "pid 303561: Test failure common.cu:1100" in runs[0].errors[1].message
    assert "pid 306338: Test failure common.cu:1100" in runs[1].errors[-1].message


def test_old_format_error_column_na_indented():
    (run,) = parse_file(F18)
    assert len(run.rows) == 31
    assert run.avg_busbw_gbps == 16.2513 and run.out_of_bounds == 0
    for r in run.rows:
        assert r.root is None  # the old all_reduce header has no root column
        assert r.oop_wrong is None and r.ip_wrong is None  # old formats have no #wrong
        assert r.oop_error is None and r.ip_error is None  # "N/A": run with -c 0
        assert r.redop == "sum"
    assert (run.rows[0].oop_time_us, run.rows[0].ip_time_us) == (4849.2, 3600.9)
    assert _row(run, 262144).oop_time_us == 12070 and _row(run, 262144).ip_time_us == 10270
    assert _row(run, 8589934592).ip_busbw_gbps == 81.57
    assert not run.failed


def test_old_format_error_values_go_to_error_not_wrong():
    # The fixture ran with -c 0; with checking on, that nccl-tests printed the maximum error ("%5.0le").
    text = F18.read_text().replace("    N/A", "  0e+00")
    (run,) = parse_text(text, "x")
    assert len(run.rows) == 31
    assert all(r.oop_error == 0.0 and r.ip_error == 0.0 for r in run.rows)
    assert all(r.oop_wrong is None and r.ip_wrong is None for r in run.rows)


# --- launcher prefixes and interleaving ------------------------------------------------------------------------


def test_srun_label_prefix_is_ignored():
    plain = parse_file(F10)
    labelled = parse_text("\n".join(f"0: {line}" for line in _lines(F10)), "x")
    assert labelled[0].rows == plain[0].rows and labelled[0].nranks == 16
    assert labelled[0].avg_busbw_gbps == 70.742


def test_tag_output_at_line_start_and_mid_line():
    lines = _lines(F10)
    tagged = []
    for line in lines:
        if line.startswith("    ") and line.strip():
            # Open MPI tags every chunk it reads; a chunk may end anywhere, even inside a number.
            cut = len(line) // 2
            line = line[:cut] + "[1,0]<stdout>:" + line[cut:]
        tagged.append("[1,0]<stdout>:" + line)
    (run,) = parse_text("\n".join(tagged), "x")
    (plain,) = parse_file(F10)
    assert len(run.rows) == 31 and run.rows == plain.rows
    assert run.hosts == plain.hosts and run.errors == []


def test_nccl_info_glued_to_half_printed_row():
    lines = _lines(F13)
    # Row 97 is printed in two pieces; NCCL's own line (55) lands between them, as on a buffered stdout.
    row = lines[96]
    head, tail = row[: row.index("-1") + 2], row[row.index("-1") + 2 :]
    lines[96:97] = [head + lines[54], tail]
    (run,) = parse_text("\n".join(lines), "x")
    assert len(run.rows) == 103 and run.errors == []
    assert run.rows[0].oop_time_us == 458.55 and run.rows[0].root == -1 and run.rows[0].ip_wrong == 0


def test_elisions_and_blank_lines_are_skipped():
    lines = _lines(F04)
    lines[10:10] = ["0: ...", "", "..."]
    (run,) = parse_text("\n".join(lines), "x")
    assert len(run.rows) == 29 and run.errors == []


# --- failures, truncation, concatenation -------------------------------------------------------------------------


def test_truncated_in_the_middle_of_a_row():
    lines = _lines(F10)
    text = "\n".join(lines[:29]) + "\n" + lines[29][:60]  # line 30 (512 B) cut after the out-of-place time
    (run,) = parse_text(text, "x")
    assert [r.size_bytes for r in run.rows] == [8, 16, 32, 64, 128, 256]
    assert len(run.errors) == 1 and run.errors[0].line == 30
    assert "512" in run.errors[0].message
    assert run.failed


def test_row_cut_off_by_test_nccl_failure():
    lines = _lines(F10)
    failure = _lines(F16)[21]  # "cnode2-002: Test NCCL failure common.cu:1279 ..."
    row26 = lines[25]  # 32 B
    cut = row26[: row26.index("-1") + 2] + failure
    (run,) = parse_text("\n".join(lines[:25] + [cut]), "x")
    assert [r.size_bytes for r in run.rows] == [8, 16]
    assert [e.line for e in run.errors] == [26, 26]
    assert "size 32 cut off" in run.errors[0].message
    assert run.errors[1].message.startswith("cnode2-002: Test NCCL failure common.cu:1279")
    assert run.failed


def test_test_cuda_failure_line_is_an_error():
    lines = _lines(F10)
    failure = _lines(F16)[21].replace("Test NCCL failure", "Test CUDA failure")
    (run,) = parse_text("\n".join(lines[:30] + [failure] + lines[30:]), "x")
    assert len(run.rows) == 31
    assert run.errors == [ParseIssue(31, failure)]
    assert run.failed


def test_header_only_run_has_no_rows_error():
    lines = _lines(F10)[:23]  # everything up to the units line, no row
    (run,) = parse_text("\n".join(lines), "x")
    assert run.rows == [] and run.nranks == 16
    assert len(run.errors) == 1 and run.errors[0].line == 23 and "no result rows" in run.errors[0].message
    assert run.failed


def test_concatenated_files_split_into_runs():
    text = F16.read_text() + "\n" + F10.read_text() + F04.read_text()
    runs = parse_text(text, "cat")
    assert [r.run for r in runs] == [0, 1, 2, 3]
    assert [len(r.rows) for r in runs] == [0, 0, 31, 29]
    assert [r.failed for r in runs] == [True, True, False, False]
    assert runs[2].nranks == 16 and runs[3].nranks is None


def test_unparseable_row_in_a_table():
    lines = _lines(F10)
    lines[26] = lines[26].replace("123.4", "12x.4")  # line 27 (64 B)
    (run,) = parse_text("\n".join(lines), "x")
    assert len(run.rows) == 30
    assert [e.line for e in run.errors] == [27]


def test_failed_property():
    assert Run("s", 0, rows=[Row(size_bytes=8, oop_wrong=0, ip_wrong=0)]).failed is False
    assert Run("s", 0, rows=[Row(size_bytes=8, oop_wrong=0, ip_wrong=3)]).failed is True
    assert Run("s", 0, rows=[Row(size_bytes=8)], errors=[ParseIssue(1, "x")]).failed is True
    assert Run("s", 0).failed is True


def test_no_runs_in_plain_text():
    assert parse_text((FIXTURES / "SOURCES.md").read_text(), "x") == []
    assert parse_text("", "x") == []


# --- files -------------------------------------------------------------------------------------------------------


def test_unreadable_files(tmp_path):
    binary = tmp_path / "core"
    binary.write_bytes(b"\x7fELF\x00\x00\x01")
    for path in (tmp_path / "missing.log", tmp_path, binary):
        with pytest.raises(LogReadError) as info:
            parse_file(path)
        assert isinstance(info.value, SlurmkitError) and info.value.exit_code == 2
        assert str(path) in str(info.value)


# --- frames and json ---------------------------------------------------------------------------------------------


def test_frame_columns_and_dtypes():
    runs = parse_file(F18) + parse_file(F14)
    frame = runs_to_frame(runs)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 31 + 50
    for col in ("run", "nranks", "size_bytes", "count", "root", "oop_wrong", "ip_wrong"):
        assert str(frame[col].dtype) == "Int64"
    for col in ("oop_time_us", "oop_algbw_gbps", "oop_busbw_gbps", "oop_error", "ip_time_us", "ip_error"):
        assert str(frame[col].dtype) == "float64"
    old = frame[frame["source"] == str(F18)]
    assert old["root"].isna().all() and old["nranks"].isna().all() and old["oop_error"].isna().all()
    assert old["size_bytes"].iloc[-1] == 8589934592 and old["oop_time_us"].iloc[-1] == 210583
    sendrecv = frame[frame["collective"] == "sendrecv"]
    assert len(sendrecv) == 10 and sendrecv["ip_wrong"].isna().all() and (sendrecv["oop_wrong"] == 0).all()


def test_json_shape():
    doc = runs_to_json(parse_file(F16) + parse_file(F13))
    assert list(doc) == ["runs"] and len(doc["runs"]) == 3
    for run in doc["runs"]:
        assert list(run) == ["source", "run", "collective", "nranks", "avg_busbw_gbps", "errors", "rows"]
    assert doc["runs"][0]["errors"][0] == {"line": 22, "message": parse_file(F16)[0].errors[0].message}
    rs = doc["runs"][2]
    assert rs["collective"] == "reduce_scatter" and rs["nranks"] == 2 and rs["avg_busbw_gbps"] == 3.31498
    assert len(rs["rows"]) == 103
    assert list(rs["rows"][0]) == list(COLUMNS[4:])
    assert rs["rows"][0]["oop_time_us"] == 458.55 and rs["rows"][0]["oop_error"] is None


# --- speed -------------------------------------------------------------------------------------------------------


def _best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_parsing_is_linear():
    # Judged as ratios of times measured in this run (never as seconds): 10x the input must cost about 10x the
    # time; a quadratic parser would take 100x. Best of 3 against the noise of a shared machine.
    text = F13.read_text()
    small = text * (200_000 // len(text))
    big = small * 10
    runs = parse_text(big, "big")
    assert len(runs) == big.count("# Collective test starting") and all(len(r.rows) == 103 for r in runs)
    t_small = _best_of(3, lambda: parse_text(small, "small"))
    t_big = _best_of(3, lambda: parse_text(big, "big"))
    assert t_big / t_small < 30, (t_small, t_big)
    # A pathological line (a huge word before "NCCL") must not be quadratic either.
    t_line_small = _best_of(3, lambda: parse_text("a" * 100_000 + " NCCL INFO", "x"))
    t_line_big = _best_of(3, lambda: parse_text("a" * 1_000_000 + " NCCL INFO", "x"))
    assert t_line_big / max(t_line_small, 1e-6) < 30, (t_line_small, t_line_big)


def test_parse_module_does_not_import_pandas():
    import subprocess
    import sys

    code = "import sys, slurmkit.bench.parse; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"



def test_collective_from_the_binary_name_on_the_command_line():
    # The source of F10 (see SOURCES.md) begins with its mpirun command; its last line names the binary.
    command = ">    /opt/src/nccl-tests/build/all_reduce_perf -b 8 -e 8G -f 2 -g 1"
    (run,) = parse_text(command + "\n\n" + F10.read_text(), "x")
    assert run.collective == "all_reduce" and len(run.rows) == 31


# --- the block fast path reads what the line-by-line path reads ---------------------------------------------


def _line_by_line(text: str, monkeypatch) -> list[Run]:
    """parse_text with the block reader switched off: every line goes through _Parser.feed."""
    from slurmkit.bench import parse as mod

    with monkeypatch.context() as m:
        m.setattr(mod._Parser, "read_blocks", lambda self, start, pos: (start, pos))
        return parse_text(text, "x")


def _variants(path: Path) -> list[str]:
    """A fixture as it is, with its rows' srun labels on every other line only, and with a float token that
    float() refuses ("1.2.3") in the middle of a table (both read by the fallback paths)."""
    text = path.read_text()
    lines = text.split("\n")
    mixed = [ln[3:] if ln.startswith("0: ") and i % 2 else ln for i, ln in enumerate(lines)]
    bad = list(lines)
    rows = [i for i, ln in enumerate(lines) if ln.strip()[:1].isdigit() and len(ln.split()) > 8]
    if rows:
        i = rows[len(rows) // 2]
        parts = bad[i].rsplit(".", 1)
        bad[i] = parts[0] + ".2.3" + parts[1][1:] if len(parts) == 2 else bad[i]
    return [text, "\n".join(mixed), "\n".join(bad)]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.txt")), ids=lambda p: p.name[:8])
def test_block_reading_equals_line_by_line_reading(path, monkeypatch):
    for text in _variants(path):
        fast, slow = parse_text(text, "x"), _line_by_line(text, monkeypatch)
        assert [(r.collective, r.nranks, r.hosts, r.avg_busbw_gbps, r.rows, r.errors) for r in fast] == \
               [(r.collective, r.nranks, r.hosts, r.avg_busbw_gbps, r.rows, r.errors) for r in slow]
        assert sum(len(r.rows) for r in fast) > 0 or all(r.errors for r in fast)


def test_block_reading_equals_line_by_line_reading_across_runs_of_every_format(monkeypatch):
    # every fixture after every other (runs of one format after runs of another, as the benchmark's log), and a
    # header line with a NCCL message glued to it (the block reader leaves it to feed())
    text = "".join(p.read_text().rstrip("\n") + "\n" for p in sorted(FIXTURES.glob("*.txt")))
    lines = text.split("\n")
    i = next(i for i, ln in enumerate(lines) if ln.startswith("# Using devices"))
    lines[i] += "host1:12:34 [0] NCCL INFO glued"
    for variant in (text, "\n".join(lines)):
        fast, slow = parse_text(variant, "x"), _line_by_line(variant, monkeypatch)
        assert len(fast) > 6
        assert [(r.collective, r.nranks, r.hosts, r.avg_busbw_gbps, r.rows, r.errors) for r in fast] == \
               [(r.collective, r.nranks, r.hosts, r.avg_busbw_gbps, r.rows, r.errors) for r in slow]


def test_block_reading_of_rank_lines_falls_back_to_line_by_line_on_odd_ones(monkeypatch):
    # The block reader reads a block of rank lines in one findall and takes it only when every line was read; a
    # rank line cut short, one with a NCCL message glued, or tab-separated makes it read the block line by line.
    path = next(FIXTURES.glob("nccl-14-*.txt"))
    lines = path.read_text().split("\n")
    ranks = [i for i, ln in enumerate(lines) if ln.startswith("#  Rank ")]
    assert len(ranks) >= 40
    first, second, third, fourth = ranks[1], ranks[12], ranks[23], ranks[34]
    odd = list(lines)
    odd[first] = odd[first][:30]  # "#  Rank  1 Group  0 Pid 385643": no host
    odd[second] = odd[second].split(" device")[0] + ":1:2 [0] NCCL INFO glued"  # the message's host: no rank
    odd[third] = odd[third].replace(" ", "\t")
    odd[fourth] = odd[fourth - 1].replace("cnode3", "other")  # the rank above again, on another host
    for variant in (path.read_text(), "\n".join(odd)):
        fast, slow = parse_text(variant, "x"), _line_by_line(variant, monkeypatch)
        assert [(r.nranks, r.hosts, r.rows, r.errors) for r in fast] == \
               [(r.nranks, r.hosts, r.rows, r.errors) for r in slow]
    fast = parse_text("\n".join(odd), "x")
    assert fast[0].nranks == 9 and "cnode3-003" not in fast[0].hosts  # rank 1 unread
    assert fast[1].nranks == 9 and not any(":" in h for h in fast[1].hosts)
    assert fast[3].nranks == 9 and not any(h.startswith("other") for h in fast[3].hosts)  # a rank twice: first host


def test_parsing_leaves_the_garbage_collector_as_it_was():
    import gc

    assert gc.isenabled()
    parse_text(F10.read_text(), "x")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_text(F10.read_text(), "x")
        assert not gc.isenabled()
    finally:
        gc.enable()

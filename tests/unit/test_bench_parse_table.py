"""The parse table built column-wise (runs_to_columns, runs_to_table, write_csv, runs_to_json_text, write_parquet)
against the row-wise forms it replaced (one dict per row into pandas, json.dumps with indent, pandas' to_csv and
to_parquet), on every real fixture of tests/fixtures/nccl-tests and on all of them concatenated."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from slurmkit.bench import parse as P
from slurmkit.bench.parse import COLUMNS, parse_file, parse_text, runs_to_records

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nccl-tests"
LOGS = sorted(FIXTURES.glob("*.txt"))


def _all_concatenated() -> list:
    text = "".join(p.read_text().rstrip("\n") + "\n" for p in LOGS)
    return parse_text(text, "all-fixtures.log")


CASES = [pytest.param(lambda p=p: parse_file(p), id=p.name) for p in LOGS] + [
    pytest.param(lambda: [run for p in LOGS for run in parse_file(p)], id="every-fixture-as-several-logs"),
    pytest.param(_all_concatenated, id="every-fixture-in-one-log"),
    pytest.param(lambda: [], id="no-runs"),
]


def _row_wise_frame(runs):
    """The row-wise frame runs_to_frame built before: one dict per row, then the dtypes."""
    frame = pd.DataFrame(runs_to_records(runs), columns=list(COLUMNS))
    dtypes = {c: "Int64" if c in P._INT_COLUMNS else "string" if c in P._STR_COLUMNS else "float64" for c in COLUMNS}
    return frame.astype(dtypes)


def test_the_fixtures_are_there():
    assert len(LOGS) == 6
    assert sum(len(r.rows) for r in _all_concatenated()) > 100


@pytest.mark.parametrize("runs_of", CASES)
def test_column_wise_frame_equals_the_row_wise_one(runs_of):
    runs = runs_of()
    expected = _row_wise_frame(runs)
    got = P.runs_to_frame(runs)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert list(got.dtypes.astype(str)) == list(expected.dtypes.astype(str))


@pytest.mark.parametrize("runs_of", CASES)
def test_columns_are_the_records_transposed(runs_of):
    runs = runs_of()
    records = runs_to_records(runs)
    columns = P.runs_to_columns(runs)
    assert list(columns) == list(COLUMNS)
    assert {name: [r[name] for r in records] for name in COLUMNS} == columns


@pytest.mark.parametrize("runs_of", CASES)
def test_csv_is_the_text_pandas_wrote(runs_of):
    runs = runs_of()
    buf = io.StringIO()
    P.write_csv(runs, buf)
    assert buf.getvalue() == _row_wise_frame(runs).to_csv(index=False)


@pytest.mark.parametrize("runs_of", CASES)
def test_json_text_is_json_dumps_indented(runs_of):
    runs = runs_of()
    text = P.runs_to_json_text(runs)
    assert text == json.dumps(P.runs_to_json(runs), indent=2) + "\n"


@pytest.mark.parametrize("runs_of", CASES)
def test_parquet_is_what_pandas_wrote(runs_of, tmp_path):
    runs = runs_of()
    mine, theirs = tmp_path / "mine.parquet", tmp_path / "theirs.parquet"
    P.write_parquet(runs, mine)
    _row_wise_frame(runs).to_parquet(theirs, index=False)
    a, b = pq.read_table(mine), pq.read_table(theirs)
    assert a.schema.equals(b.schema, check_metadata=False)
    assert json.loads(a.schema.metadata[b"pandas"]) == json.loads(b.schema.metadata[b"pandas"])
    assert a.equals(b)
    pd.testing.assert_frame_equal(pd.read_parquet(mine), pd.read_parquet(theirs), check_exact=True)


def test_a_nan_a_log_printed_is_empty_in_csv_and_null_in_json():
    # the fixtures print no "nan": take a real row of nccl-10 and read a copy of it whose time reads "nan"
    runs = parse_file(FIXTURES / "nccl-10-a3mega-2node-h100-rankheader.txt")
    row = runs[0].rows[0]._replace(oop_time_us=float("nan"), ip_algbw_gbps=float("inf"))
    runs[0].rows[0] = row
    buf = io.StringIO()
    P.write_csv(runs, buf)
    assert buf.getvalue() == _row_wise_frame(runs).to_csv(index=False)
    assert P.runs_to_json_text(runs) == json.dumps(P.runs_to_json(runs), indent=2) + "\n"
    pd.testing.assert_frame_equal(P.runs_to_frame(runs), _row_wise_frame(runs), check_exact=True)
